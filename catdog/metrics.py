"""Classification metrics from labels and P(dog), computed in plain numpy."""

import numpy as np

_EPSILON = 1e-7  # Keras' clipping for binary cross-entropy


def log_loss(labels, p_dog):
    """Mean binary cross-entropy, clipped as Keras clips it."""
    labels = np.asarray(labels, np.float64)
    p = np.clip(np.asarray(p_dog, np.float64), _EPSILON, 1 - _EPSILON)
    if labels.size == 0:
        return float("nan")
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def accuracy(labels, p_dog, threshold=0.5):
    labels = np.asarray(labels)
    if labels.size == 0:
        return float("nan")
    return float(np.mean((np.asarray(p_dog) >= threshold) == (labels >= 0.5)))


def basic_metrics(labels, p_dog, threshold=0.5):
    return {
        "accuracy": accuracy(labels, p_dog, threshold),
        "loss": log_loss(labels, p_dog),
        "n_images": int(np.asarray(labels).size),
    }
