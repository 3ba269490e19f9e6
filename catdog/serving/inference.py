"""Predicting on image files: any format, any size, bad files reported per file."""

import os
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from catdog.data.folders import CLASS_NAMES, image_files
from catdog.data.oneshot import decode_once
from catdog.errors import ConfigError


@dataclass
class Prediction:
    """One file's prediction.

    `p_dog` is the model's output: P(second class) for two classes (P(dog)
    for cats vs dogs), the vector of class probabilities for more.
    """

    path: str
    p_dog: object
    threshold: float = 0.5
    class_names: tuple = CLASS_NAMES

    @property
    def probabilities(self):
        """{class name: probability} for every class."""
        values = np.asarray(self.p_dog, np.float64).reshape(-1)
        if values.size == 1:
            values = np.array([1.0 - values[0], values[0]])
        return {name: float(p) for name, p in zip(self.class_names, values)}

    @property
    def label(self):
        if np.ndim(self.p_dog) == 0:
            return self.class_names[int(self.p_dog >= self.threshold)]
        return self.class_names[int(np.argmax(self.p_dog))]

    @property
    def score(self):
        """What `catdog predict` prints after the label: P(dog) (P of the second
        class) for two classes, as it always did; the label's probability for more."""
        if np.ndim(self.p_dog) == 0:
            return float(self.p_dog)
        return self.probabilities[self.label]

    def to_dict(self):
        if np.ndim(self.p_dog) == 0:
            row = {"path": self.path, "label": self.label, "p_dog": round(float(self.p_dog), 6)}
            if tuple(self.class_names) != CLASS_NAMES:
                row[f"p_{self.class_names[1]}"] = row["p_dog"]
        else:
            row = {"path": self.path, "label": self.label, "probability": round(self.score, 6)}
        row["probabilities"] = {name: round(p, 6) for name, p in self.probabilities.items()}
        return row



class Predictor:
    """A compiled forward pass from raw images to class probabilities.

    `model.predict` sets up an iterator and callbacks on every call (tens of
    milliseconds, more than one image's network on a CPU); a compiled function of the forward pass
    costs only the network, which is what single-image serving needs.
    `catdog predict` runs its model through one. Call it on a batch of raw
    0..255 images, shape `(n, height, width, 3)` (one image of shape
    `(height, width, 3)` is a batch of one): it returns a numpy array,
    `(n,)` P(second class) (P(dog)) for a one-unit model, `(n, N)`
    probabilities for N classes. The first call traces the function
    (seconds), and so may a call with a batch shape not seen before.

    Args:
        model: A catdog classifier; with `engine="keras"`, any Keras model
            of images.
        engine: `"keras"`, the model compiled for the Keras backend
            (`tf.function` on TensorFlow, `jax.jit` on JAX), or `"tflite"`,
            the model converted to TFLite in memory (TensorFlow backend only;
            a few seconds to convert, then faster on CPUs; takes images of
            the model's input size only). Defaults to `"keras"`.

    Raises:
        ConfigError: `engine` is neither `"keras"` nor `"tflite"`.

    Example:

    >>> import numpy as np
    >>> import catdog
    >>> model = catdog.CatDogClassifier(image_size=32, alpha=0.35, weights=None)
    >>> predictor = catdog.Predictor(model)
    >>> photos = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), "uint8")
    >>> p_dog = predictor(photos)
    >>> p_dog.shape, p_dog.dtype.name
    ((3,), 'float32')
    >>> bool(np.allclose(p_dog, np.asarray(model(photos)).ravel(), atol=1e-6))  # the same numbers
    True
    >>> one = predictor(photos[0])  # one image after a batch: a batch of one
    >>> one.shape, bool(np.allclose(one, p_dog[:1], atol=1e-6))
    ((1,), True)
    >>> try:
    ...     catdog.Predictor(model, engine="onnx")
    ... except catdog.ConfigError as error:
    ...     print(error)
    engine must be keras or tflite, got 'onnx'
    """

    def __init__(self, model, engine="keras"):
        self.model = model
        self.engine = engine
        backend = keras.backend.backend()
        if engine == "tflite":
            self._forward = _tflite_forward(model)
        elif engine != "keras":
            raise ConfigError(f"engine must be keras or tflite, got {engine!r}")
        elif backend == "tensorflow":
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
        """(n,) P(second class) for a one-unit model, (n, N) probabilities for more.

        One image `(height, width, 3)` is a batch of one, so the compiled
        function only ever sees rank-4 input (a rank-3 call after a batch
        would otherwise retrace it with an unknown rank, which fails)."""
        if np.ndim(images) == 3:
            images = np.asarray(images)[None]
        outputs = np.asarray(keras.ops.convert_to_numpy(self._forward(images)))
        return outputs.reshape(-1) if outputs.shape[-1] == 1 else outputs


def _tflite_forward(model):
    """The model compiled to TFLite in memory, as a function of uint8 images.

    TFLite's XNNPACK kernels run one image on CPU in well under the compiled
    TensorFlow function's time (BENCHMARKS.md, "Inference"); the conversion
    costs some seconds once. Same float32 weights: outputs agree within 1e-4
    (BENCHMARKS.md, export parity). Takes images of the training
    size, as every export does.
    """
    import tempfile

    from catdog.serving.export import TFLITE, TFLiteRunner, export_model

    with tempfile.TemporaryDirectory(prefix="catdog-tflite-") as folder:
        path = os.path.join(folder, "model.tflite")
        export_model(model, path, format=TFLITE)
        runner = TFLiteRunner(path, content=True)
    return runner.predict


def predictor_for(model):
    """The model's `Predictor`, made (and traced) once per model."""
    predictor = getattr(model, "_catdog_predictor", None)
    if predictor is None:
        predictor = Predictor(model)
        # not through Keras' attribute tracking: it is no state of the model
        object.__setattr__(model, "_catdog_predictor", predictor)
    return predictor



def predict_files(model, inputs, batch_size=32, threshold=0.5):
    """(predictions in input order, skipped) for image files and folders of them.

    Each file is decoded once, while the model works on the previous batch
    (see `catdog.data.oneshot`).
    """
    files, skipped = image_files(inputs)
    predictor = predictor_for(model)
    p_dog = {}
    for indices, images in decode_once(files, model.image_size, batch_size, skipped):
        p_dog.update(zip(indices, predictor(images)))
    names = tuple(getattr(model, "class_names", None) or CLASS_NAMES)
    return [Prediction(files[i], _scalar_or_vector(p_dog[i]), threshold, names) for i in sorted(p_dog)], skipped


def _scalar_or_vector(output):
    output = np.asarray(output, np.float64)
    return float(output) if output.ndim == 0 else output
