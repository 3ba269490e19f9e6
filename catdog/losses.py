"""Cross-entropy on integer labels with label smoothing, which Keras' own lacks.

Keras smooths labels in `CategoricalCrossentropy` (one-hot targets) only;
its `SparseCategoricalCrossentropy`, the loss for the integer labels that
catdog's pipelines and `image_dataset_from_directory` yield, has no
`label_smoothing`. So label smoothing with more than two classes needs
either one-hot labels everywhere (the metrics and the pipeline change with
them) or this loss, which one-hot encodes inside.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="catdog")
class SparseCategoricalCrossentropyWithSmoothing(keras.losses.Loss):
    """Sparse categorical cross-entropy with label smoothing.

    For integer labels `0 .. N-1` and `N` predicted probabilities (or
    logits): the labels are one-hot encoded and smoothed as Keras'
    `CategoricalCrossentropy(label_smoothing=...)` smooths them, each target
    becoming `(1 - label_smoothing) * one_hot + label_smoothing / N`. With
    `label_smoothing=0` it equals `keras.losses.SparseCategoricalCrossentropy`.
    Pure `keras.ops`: it runs on every backend, and it is saved with a
    compiled model and found again by `keras.saving.load_model` after
    `import catdog`.

    Args:
        label_smoothing: How much of each target is spread evenly over the
            classes, in `[0, 1)`. Defaults to `0.1`.
        from_logits: Whether the predictions are logits rather than
            probabilities. Defaults to `False`.
        reduction: As for every Keras loss. Defaults to
            `"sum_over_batch_size"`.
        name: The loss' name. Defaults to
            `"sparse_categorical_crossentropy_with_smoothing"`.
        dtype: The dtype of the computation. Defaults to `None` (Keras' floatx).

    Example:

    >>> import numpy as np, keras, catdog
    >>> labels = np.array([0, 2])
    >>> probabilities = np.array([[0.8, 0.1, 0.1], [0.2, 0.2, 0.6]])
    >>> plain = keras.losses.SparseCategoricalCrossentropy()(labels, probabilities)
    >>> same = catdog.SparseCategoricalCrossentropyWithSmoothing(0.0)(labels, probabilities)
    >>> bool(np.isclose(float(plain), float(same)))
    True
    >>> smoothed = catdog.SparseCategoricalCrossentropyWithSmoothing(0.3)(labels, probabilities)
    >>> one_hot = keras.losses.CategoricalCrossentropy(label_smoothing=0.3)(np.eye(3)[labels], probabilities)
    >>> bool(np.isclose(float(smoothed), float(one_hot)))
    True
    """

    def __init__(
        self,
        label_smoothing=0.1,
        from_logits=False,
        reduction="sum_over_batch_size",
        name="sparse_categorical_crossentropy_with_smoothing",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not 0.0 <= float(label_smoothing) < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        labels = ops.cast(ops.convert_to_tensor(y_true), "int32")
        if len(labels.shape) == len(y_pred.shape):  # (batch, 1) labels, as Keras' own accepts
            labels = ops.squeeze(labels, axis=-1)
        targets = ops.one_hot(labels, y_pred.shape[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(
            targets, y_pred, from_logits=self.from_logits, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing, "from_logits": self.from_logits}
