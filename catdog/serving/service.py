"""The model behind the server: loading, warm-up, one batched call, metadata."""

import json
import os
import time

import numpy as np

from catdog.evaluation.files import METRICS_FILE
from catdog.training.run_folder import HISTORY_FILE

#: Class names of a model that has none (catdog models before N-class support).
DEFAULT_CLASS_NAMES = ("cat", "dog")
#: metrics.json entries left out of /metadata: per-image lists, not metrics.
_BULKY = ("confidently_wrong", "skipped", "paths")


def probability_matrix(outputs):
    """Model outputs as an (n, N) matrix of class probabilities.

    One sigmoid unit is P(second class): (n, 1) -> columns [1 - p, p];
    softmax outputs (n, k) are already that.
    """
    outputs = np.asarray(outputs, np.float64)
    outputs = outputs.reshape(len(outputs), -1)
    if outputs.shape[1] == 1:
        return np.concatenate([1.0 - outputs, outputs], axis=1)
    return outputs


def label_index(row, sigmoid):
    """The predicted class: P(second) >= 0.5 for a sigmoid (as `catdog predict`), else the largest."""
    return int(row[1] >= 0.5) if sigmoid else int(np.argmax(row))


class ModelService:
    """A loaded catdog model and what the server needs of it.

    `run_batch` is called from the batcher's worker thread only: it is the
    one place the model runs, for predictions and Grad-CAM alike.
    """

    def __init__(self, path):
        import keras
        import tensorflow as tf

        from catdog.loading import load_model

        self.path = os.fspath(path)
        self.model = load_model(self.path, compile=False)
        self.image_size = int(self.model.image_size)
        self.class_names = list(getattr(self.model, "class_names", None) or DEFAULT_CLASS_NAMES)
        model = self.model
        if keras.backend.backend() == "tensorflow":
            self._forward = tf.function(lambda images: model(images, training=False), reduce_retracing=True)
        else:
            self._forward = lambda images: model(images, training=False)
        self.sigmoid = None  # known after the first call

    def warm_up(self, max_batch):
        """Trace the forward pass, decoding and Grad-CAM once; run the largest batch.

        Every batch size up to 32 (and `max_batch`): TensorFlow's oneDNN
        kernels are made, and memory kept, per input shape, so a server that
        met only small batches before it said ready grew by about 100 MB and
        paid for kernel creation in its first busy minute (MobileNetV2 at
        224). About 3 s at 224 on two cores.
        """
        import io

        from PIL import Image

        from catdog.data.photos import decode_bytes

        started = time.perf_counter()
        rng = np.random.default_rng(0)
        photo = rng.integers(0, 256, (self.image_size + 7, self.image_size + 5, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(photo).save(buffer, format="JPEG")
        image = decode_bytes(buffer.getvalue(), self.image_size)
        for size in sorted({*range(1, min(max_batch, 32) + 1), max_batch}):
            self.run_batch(np.repeat(image[None], size, axis=0), np.zeros(size, bool))
        try:
            self.run_batch(image[None], np.ones(1, bool))
        except Exception:  # Grad-CAM needs TensorFlow: explain requests will say so
            pass
        return time.perf_counter() - started

    def run_batch(self, images, explain):
        """[(class probabilities (N,), heat map or None)] for a uint8 batch."""
        import keras

        outputs = keras.ops.convert_to_numpy(self._forward(images))
        self.sigmoid = outputs.reshape(len(outputs), -1).shape[1] == 1
        probabilities = probability_matrix(outputs)
        maps = [None] * len(images)
        wanted = np.flatnonzero(explain)
        if len(wanted):
            from catdog.evaluation.gradcam import class_activation_maps

            for index, heat_map in zip(wanted, class_activation_maps(self.model, images[wanted])):
                maps[index] = heat_map
        return list(zip(probabilities, maps))

    def answer(self, probabilities):
        """The JSON fields of one prediction."""
        index = label_index(probabilities, self.sigmoid)
        return {
            "label": self.class_names[index],
            "probabilities": {name: float(p) for name, p in zip(self.class_names, probabilities)},
        }

    def metadata(self):
        import keras

        from catdog.defaults import VERSION

        config = self.model.get_config()
        backbone = getattr(self.model, "backbone_name", None) or config.get("backbone") or "MobileNetV2"
        info = {
            "model": os.path.basename(self.path),
            "class_names": self.class_names,
            "image_size": self.image_size,
            "backbone": backbone,
            "backbone_alpha": config.get("alpha"),
            "stage": config.get("stage"),
            "catdog_version": VERSION,
            "keras_version": keras.__version__,
            "backend": keras.backend.backend(),
        }
        info["training"] = training_metrics(os.path.dirname(os.path.abspath(self.path)))
        return info


def training_metrics(run_dir):
    """metrics.json and the last epoch of history.json from a run folder, where present."""
    found = {}
    metrics = _read_json(os.path.join(run_dir, METRICS_FILE))
    if isinstance(metrics, dict):
        found["metrics"] = {k: v for k, v in metrics.items() if k not in _BULKY}
    history = _read_json(os.path.join(run_dir, HISTORY_FILE))
    epochs = history.get("epochs") if isinstance(history, dict) else None
    if epochs:
        found["epochs"] = len(epochs)
        found["final_epoch"] = epochs[-1]
    return found or None


def _read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None
