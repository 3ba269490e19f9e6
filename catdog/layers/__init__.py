"""Keras layers that travel inside the saved model, so the artifact eats raw pixels."""

from catdog.layers.augmentation import ImageAugmentation
from catdog.layers.preprocessing import ImagePreprocessor

__all__ = ["ImageAugmentation", "ImagePreprocessor"]
