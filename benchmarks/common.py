"""Shared benchmark plumbing: data sets, timing statistics, machine facts."""

import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = pathlib.Path(os.environ.get("CATDOG_SHARED", ROOT.parent / "shared"))
PHOTOS = SHARED / "data" / "cats_and_dogs_filtered"
KERAS_CACHE = SHARED / "keras"


def have_shared():
    return (PHOTOS / "train").is_dir() and (KERAS_CACHE / "models").is_dir()


def stats(values):
    """Median, min and max, the figures every table row reports."""
    values = [float(v) for v in values]
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


class EpochTimer:
    """A Keras callback factory recording each epoch's wall time."""

    def __new__(cls):
        import keras

        class _Timer(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.seconds, self.logs = [], []

            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._start)
                self.logs.append(dict(logs or {}))

        return _Timer()


def synthetic_jpegs(root, per_class, size=(375, 500), seed=0):
    """cats/ and dogs/ of noisy, colour-coded JPEGs the size of real photos."""
    root = pathlib.Path(root)
    rng = np.random.default_rng(seed)
    height, width = size
    for label, name in enumerate(("cats", "dogs")):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        existing = len(list(folder.iterdir()))
        tint = np.array([190, 90, 60] if label == 0 else [60, 90, 190], np.float32)
        # One noise field per class, shifted per image: real-photo-sized files
        # without spending minutes in the random generator.
        field = np.clip(tint + rng.normal(0, 40, (height * 2, width * 2, 3)), 0, 255).astype(np.uint8)
        for i in range(existing, per_class):
            y, x = rng.integers(0, height), rng.integers(0, width)
            Image.fromarray(field[y:y + height, x:x + width]).save(folder / f"{name}.{i}.jpg", quality=90)
    return root


def subset_folder(source, target, per_class, offset=0):
    """A folder of symlinks to `per_class` photos of each class of `source`."""
    target = pathlib.Path(target)
    for name in ("cats", "dogs"):
        (target / name).mkdir(parents=True, exist_ok=True)
        files = sorted(os.listdir(pathlib.Path(source) / name))[offset:offset + per_class]
        for filename in files:
            link = target / name / filename
            if not link.exists():
                link.symlink_to(pathlib.Path(source) / name / filename)
    return target


def machine():
    import keras
    import tensorflow as tf

    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpus = tf.config.list_physical_devices("GPU")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": ", ".join(tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus) or "none",
        "python": platform.python_version(),
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
        "backend": keras.backend.backend(),
    }


def peak_rss_of(command, env=None, timeout=3600):
    """(seconds, peak RSS in MiB, return code) of a command run in a fresh child."""
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "rc = subprocess.run(sys.argv[1:]).returncode\n"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, rc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *command],
        capture_output=True, text=True, env=env, timeout=timeout,
    )
    seconds, rss, rc = out.stdout.strip().splitlines()[-1].split()
    return float(seconds), float(rss), int(rc)
