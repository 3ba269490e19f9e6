"""Accuracy of a model on labelled photos under each shift of the suite.

Each photo is decoded once, at its own size (as `catdog evaluate` decodes it,
with the same DCT scaling), then for the clean photo and for every shift:
shift -> the pipeline's bilinear resize to the model's side -> the model. The
clean pass is the photo through exactly the path of `catdog evaluate`, so its
accuracy is the plain evaluation's. Works from the model's probabilities
alone: one sigmoid unit (P(second class), thresholded as everywhere) or a
softmax over N classes (argmax).
"""

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from catdog.errors import ConfigError, DataError
from catdog.evaluation.robustness.suite import SUITE_VERSION, photo_rng, select

#: Prediction batches of this many photos; each is shifted every way first.
DEFAULT_BATCH = 32


@dataclass
class RobustnessResult:
    """Labels and class probabilities of every photo, clean and under each shift."""

    labels: np.ndarray
    clean: np.ndarray
    shifted: dict
    shifts: list
    class_names: list
    threshold: float = 0.5
    seed: int = 0
    tta: bool = False
    source: str = ""
    limit: int | None = None
    n_available: int = 0
    skipped: list = field(default_factory=list)
    seconds: float = 0.0

    def predictions(self, probabilities):
        if probabilities.shape[1] == 2 and len(self.class_names) == 2:
            return (probabilities[:, 1] >= self.threshold).astype(np.int64)
        return probabilities.argmax(axis=1)

    def accuracy(self, probabilities):
        return float(np.mean(self.predictions(probabilities) == self.labels))

    @property
    def clean_accuracy(self):
        return self.accuracy(self.clean)

    @property
    def shift_accuracies(self):
        """{shift name: accuracy}, in suite order."""
        return {shift.name: self.accuracy(self.shifted[shift.name]) for shift in self.shifts}

    @property
    def mean_accuracy(self):
        return float(np.mean(list(self.shift_accuracies.values())))

    def to_dict(self):
        clean = self.clean_accuracy
        accuracies = self.shift_accuracies
        clean_predictions = self.predictions(self.clean)
        families = {}
        for shift in self.shifts:
            families.setdefault(shift.family, []).append(accuracies[shift.name])
        worst = min(accuracies, key=accuracies.get)
        return {
            "suite": SUITE_VERSION,
            "seed": self.seed,
            "tta": self.tta,
            "source": self.source,
            "n_images": int(self.labels.size),
            "n_available": self.n_available,
            "limit": self.limit,
            "n_skipped": len(self.skipped),
            "clean_accuracy": clean,
            "mean_accuracy": self.mean_accuracy,
            "mean_drop": clean - self.mean_accuracy,
            "worst": {"shift": worst, "accuracy": accuracies[worst]},
            "families": {family: float(np.mean(values)) for family, values in families.items()},
            "shifts": {
                shift.name: {
                    "family": shift.family,
                    "description": shift.description,
                    "accuracy": accuracies[shift.name],
                    "drop": clean - accuracies[shift.name],
                    "changed_predictions": int(
                        np.sum(self.predictions(self.shifted[shift.name]) != clean_predictions)
                    ),
                }
                for shift in self.shifts
            },
            "seconds": round(self.seconds, 1),
        }


def evaluate_shifts(model, data, shifts=None, seed=0, limit=None, threshold=0.5, batch_size=DEFAULT_BATCH, tta=False):
    """Evaluate `model` on `data`, clean and under each distribution shift.

    Validation accuracy says how a model does on photos like its training
    photos; users send noisy, blurred, over-exposed, tilted, badly cropped
    or tiny ones. This measures the accuracy under each shift of a fixed, seeded
    suite (ImageNet-C corruptions at two severities, and camera shifts:
    greyscale, rotation, off-centre crop, zoom, low resolution, mirror), the
    one `catdog evaluate --shifts` reports. Each shift acts on the decoded
    photo, which then goes through the model's usual resize, so the clean
    accuracy is `catdog.evaluate`'s.

    Args:
        model: A catdog model or the path of its `.keras` file.
        data: A folder of class sub-folders, `"tfds:cats_vs_dogs[:SPLIT]"`,
            a `tf.data.Dataset` of (image, label), or `(images, labels)`
            arrays.
        shifts: A list of shift names (`"jpeg-s4"`) or family names
            (`"rotation"`: all its shifts), or of `Shift` objects. Defaults
            to `None`: the whole suite.
        seed: Fixes every random choice of the suite (the noise, the
            rotation's direction, the crop's corner) and the `limit` sample.
            Defaults to `0`.
        limit: Evaluate a seeded sample of at most this many photos.
            Defaults to `None`: all of them.
        threshold: For one-unit (binary) models, P(second class) from which a
            photo is called the second class. Defaults to `0.5`.
        batch_size: Photos shifted and predicted together. Defaults to `32`.
        tta: Average each prediction with that of the mirror image. Defaults
            to `False`.

    Returns:
        A `RobustnessResult`: the labels and class probabilities of every
        photo, clean and per shift, with `clean_accuracy`,
        `shift_accuracies` and `to_dict()` (accuracies, drops and changed
        predictions per shift: the `robustness` of `metrics.json`).

    Raises:
        ConfigError: an unknown shift name, or `limit` below 1.
        DataError: `data` holds no usable photo, or is of a kind not listed.
        ModelFileError: `model` is a path that holds no catdog model.

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> import catdog
    >>> folder = tempfile.mkdtemp()
    >>> for name, grey in (("cats", 60), ("dogs", 190)):
    ...     os.makedirs(os.path.join(folder, name))
    ...     for i in range(3):
    ...         photo = np.full((40, 48, 3), grey + 10 * i, "uint8")
    ...         Image.fromarray(photo).save(os.path.join(folder, name, f"{i}.jpg"))
    >>> model = catdog.CatDogClassifier(image_size=32, alpha=0.35, weights=None)
    >>> result = catdog.evaluate_shifts(model, folder, shifts=["rotation", "mirror"], limit=4)
    >>> summary = result.to_dict()
    >>> summary["n_images"], summary["n_available"], list(summary["shifts"])
    (4, 6, ['rotation-10deg', 'rotation-20deg', 'mirror'])
    >>> summary["mean_drop"]  # flat grey photos look the same turned or mirrored
    0.0
    """
    started = time.perf_counter()
    if isinstance(model, (str, os.PathLike)):
        from catdog.loading import load_model

        model = load_model(os.fspath(model))
    if shifts is None or all(isinstance(s, str) for s in shifts):
        shifts = select(shifts)
    if not shifts:
        raise ConfigError("no shift selected")
    if limit is not None and int(limit) < 1:
        raise ConfigError(f"limit must be at least 1, got {limit}")
    size = int(model.image_size)
    photos = labelled_photos(data, size, limit, seed)

    labels, clean, shifted = [], [], {shift.name: [] for shift in shifts}
    chunk = []

    def versions(item):
        """The model-sized clean photo and each of its shifted versions."""
        photo, _, index = item
        # Every shift keeps the photo's shape: one resize call for all versions.
        return _resized(
            np.stack([photo] + [shift.apply(photo, photo_rng(seed, shift, index), size) for shift in shifts]),
            size,
        )

    def flush(pool):
        if not chunk:
            return
        # NumPy, Pillow and TensorFlow release the GIL: photos shift in parallel.
        columns = list(zip(*pool.map(versions, chunk)))
        clean.append(_probabilities(model, columns[0], tta))
        for shift, column in zip(shifts, columns[1:]):
            shifted[shift.name].append(_probabilities(model, column, tta))
        labels.extend(label for _, label, _ in chunk)
        chunk.clear()

    with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
        for item in photos.items():
            chunk.append(item)
            if len(chunk) == batch_size:
                flush(pool)
        flush(pool)
    if not labels:
        raise DataError(f"no images to evaluate in {photos.source}")
    class_names = list(getattr(model, "class_names", None) or ["cat", "dog"])
    return RobustnessResult(
        labels=np.asarray(labels, np.int64),
        clean=np.concatenate(clean),
        shifted={name: np.concatenate(parts) for name, parts in shifted.items()},
        shifts=list(shifts),
        class_names=class_names,
        threshold=float(threshold),
        seed=int(seed),
        tta=bool(tta),
        source=photos.source,
        limit=None if limit is None else int(limit),
        n_available=photos.n_available,
        skipped=list(photos.skipped),
        seconds=time.perf_counter() - started,
    )


def probability_matrix(outputs):
    """Model outputs as an (n, classes) matrix: one unit p -> [1 - p, p]."""
    outputs = np.asarray(outputs, np.float64)
    outputs = outputs.reshape(len(outputs), -1)
    if outputs.shape[1] == 1:
        return np.concatenate([1.0 - outputs, outputs], axis=1)
    return outputs


def _probabilities(model, images, tta):
    batch = np.ascontiguousarray(np.stack(images))
    probabilities = probability_matrix(model.predict_on_batch(batch))
    if tta:
        mirrored = np.ascontiguousarray(batch[:, :, ::-1])
        probabilities = (probabilities + probability_matrix(model.predict_on_batch(mirrored))) / 2
    return probabilities


def _resized(photos, size):
    """The pipeline's resize (bilinear, rounded to uint8), as every photo gets;
    `photos` is one photo or a stack of photos of one shape."""
    from catdog.data.decode import resize_uint8

    if photos.shape[-3] == size and photos.shape[-2] == size:
        return photos
    return resize_uint8(photos, size).numpy()


# --- where the photos come from ----------------------------------------------


@dataclass
class LabelledPhotos:
    """Decoded photos at their own size: `items()` yields (photo, label, index)."""

    items: object
    source: str
    n_available: int
    skipped: list = field(default_factory=list)


def labelled_photos(data, image_size, limit=None, seed=0):
    """`data` as decoded, unresized photos with integer labels.

    `index` is the photo's position in the whole data set, so a `limit`
    sample shifts each photo it keeps exactly as the full run does.
    """
    import tensorflow as tf

    if isinstance(data, (str, os.PathLike)):
        from catdog.data.sources import is_tfds

        spec = os.fspath(data)
        if is_tfds(spec):
            return _tfds_photos(spec, limit, seed)
        return _folder_photos(spec, image_size, limit, seed)
    if isinstance(data, tf.data.Dataset):
        if data.element_spec[0].shape.rank == 4:
            data = data.unbatch()
        return _dataset_photos(data, "dataset", None, limit, seed)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        images, labels = np.asarray(data[0]), np.asarray(data[1]).reshape(-1)
        if images.ndim != 4 or len(images) != len(labels) or images.shape[-1] != 3:
            raise DataError(
                f"expected (images, labels) with images of shape (n, height, width, 3) "
                f"and n labels, got {images.shape} and {labels.shape}"
            )
        keep = _sample(len(images), limit, seed)

        def items():
            for index in keep:
                yield _as_uint8(images[index]), _label(labels[index]), int(index)

        return LabelledPhotos(items, "arrays", len(images))
    raise DataError(
        f"cannot evaluate on a {type(data).__name__}: pass a folder, a tfds: spec, a dataset or (images, labels)"
    )


def _folder_photos(spec, image_size, limit, seed):
    import tensorflow as tf

    from catdog.data.decode import decode_file
    from catdog.data.folders import list_labelled_files
    from catdog.data.screening import as_arrays, inspect_files

    files = list_labelled_files(spec)
    manifest = inspect_files(files.paths, files.labels, image_size)
    if not len(manifest):
        raise DataError(f"no usable images in {spec}")
    paths, labels, use_pil = as_arrays(manifest)
    keep = _sample(len(paths), limit, seed)

    def items():
        dataset = tf.data.Dataset.from_tensor_slices((paths[keep], use_pil[keep])).map(
            lambda path, pil: decode_file(path, image_size, pil),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        for index, photo in zip(keep, dataset.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()):
            yield photo, _label(labels[index]), int(index)

    return LabelledPhotos(items, spec, len(paths), list(files.skipped) + list(manifest.skipped))


def _tfds_photos(spec, limit, seed):
    from catdog.data.labelled import open_tfds_split

    dataset = open_tfds_split(spec)
    return _dataset_photos(dataset, spec, int(dataset.cardinality()), limit, seed)


def _dataset_photos(dataset, source, n, limit, seed):
    if limit is not None and (n is None or n < 0):
        n = sum(1 for _ in dataset)
    keep = None if limit is None else set(_sample(n, limit, seed).tolist())

    def items():
        for index, (image, label) in enumerate(dataset.as_numpy_iterator()):
            if keep is None or index in keep:
                yield _as_uint8(image), _label(label), index

    return LabelledPhotos(items, source, n if n is not None and n >= 0 else 0)


def _sample(n, limit, seed):
    """Indices of a seeded sample of `limit` of `n` items, in order (all: no limit)."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([int(seed), n]).choice(n, int(limit), replace=False))


def _label(value):
    return int(np.rint(np.asarray(value, np.float64).reshape(-1)[0]))


def _as_uint8(image):
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    if image.dtype == np.uint8:
        return image
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


# --- text ----------------------------------------------------------------------


def summary_lines(result):
    """The robustness evaluation as a few lines for the terminal."""
    summary = result.to_dict()
    sample = f" (a seeded sample of {summary['n_available']})" if summary["n_images"] < summary["n_available"] else ""
    lines = [
        f"distribution shift ({summary['suite']}, seed {summary['seed']}"
        + (", with mirror averaging" if summary["tta"] else "")
        + f"): {summary['n_images']} images{sample}, {summary['seconds']:.0f} s",
        f"clean accuracy {summary['clean_accuracy']:.4f}; mean over {len(summary['shifts'])} shifts "
        f"{summary['mean_accuracy']:.4f} ({-summary['mean_drop']:+.4f}); worst {summary['worst']['shift']} "
        f"{summary['worst']['accuracy']:.4f}",
    ]
    for name, row in summary["shifts"].items():
        lines.append(f"  {name:<24} {row['accuracy']:.4f}  ({-row['drop']:+.4f}, {row['changed_predictions']} changed)")
    return lines
