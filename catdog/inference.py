"""Predicting on image files: any format, any size, bad files reported per file."""

import os
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from catdog.data.folders import CLASS_NAMES, list_labelled_files, walk_files
from catdog.data.inspect import SkippedFile, inspect_files
from catdog.data.pipeline import manifest_dataset
from catdog.errors import DataError


@dataclass
class Prediction:
    path: str
    p_dog: float
    threshold: float = 0.5

    @property
    def label(self):
        return CLASS_NAMES[int(self.p_dog >= self.threshold)]

    def to_dict(self):
        return {"path": self.path, "label": self.label, "p_dog": round(self.p_dog, 6)}


def image_files(inputs):
    """Files named in `inputs`, folders walked recursively, hidden entries skipped.

    Returns (files, missing) so a missing path is reported, not fatal.
    """
    files, missing = [], []
    for item in inputs:
        if os.path.isdir(item):
            found, skipped = walk_files(item)
            files.extend(found)
            missing.extend(skipped)
        elif os.path.isfile(item):
            files.append(item)
        elif os.path.exists(item):
            missing.append(SkippedFile(item, "not a regular file"))
        else:
            missing.append(SkippedFile(item, "no such file or folder"))
    return files, missing


class Predictor:
    """A compiled forward pass: raw images -> P(dog) as a flat numpy array.

    `model.predict` sets up an iterator and callbacks on every call (50-90 ms
    for one image on two cores); a compiled function of the forward pass
    costs only the network, which is what single-image serving needs.
    """

    def __init__(self, model):
        self.model = model
        backend = keras.backend.backend()
        if backend == "tensorflow":
            self._forward = tf.function(
                lambda images: model(images, training=False), reduce_retracing=True
            )
        elif backend == "jax":
            import jax

            stateless = jax.jit(
                lambda trainable, other, images: model.stateless_call(
                    trainable, other, images, training=False
                )[0]
            )
            self._forward = lambda images: stateless(
                [v.value for v in model.trainable_variables],
                [v.value for v in model.non_trainable_variables],
                images,
            )
        else:
            self._forward = lambda images: model(images, training=False)

    def __call__(self, images):
        return np.asarray(keras.ops.convert_to_numpy(self._forward(images))).reshape(-1)


def probabilities(model, dataset, predictor=None):
    """P(dog) for every image of a batched (images, labels) dataset."""
    predictor = predictor or Predictor(model)
    outputs = [predictor(images) for images, _ in dataset]
    return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)


def predict_files(model, inputs, batch_size=32, threshold=0.5):
    """(predictions, skipped) for image files and folders of them."""
    files, skipped = image_files(inputs)
    manifest = inspect_files(files, [0] * len(files), model.image_size)
    skipped += manifest.skipped
    if not len(manifest):
        return [], skipped
    dataset = manifest_dataset(manifest, model.image_size, batch_size)
    p_dog = probabilities(model, dataset)
    return [Prediction(path, float(p), threshold) for path, p in zip(manifest.paths, p_dog)], skipped


def has_gpu():
    return bool(tf.config.list_physical_devices("GPU"))
