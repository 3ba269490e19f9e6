"""Labelled data to evaluate on: a folder, a TFDS split, a dataset or arrays."""

import os
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from catdog.data.folders import list_labelled_files
from catdog.data.screening import inspect_files
from catdog.data.pipeline import decoded_dataset, manifest_dataset
from catdog.data.sources import TFDS_NAME, TFDS_PREFIX, TFDS_VAL_SPLIT, is_tfds
from catdog.errors import ConfigError, DataError, first_line


@dataclass
class LabelledData:
    """Batches of (raw images, labels), and what is known about where they came from.

    `paths` is None when the images have no files (TFDS, arrays); otherwise it
    lists one file per image, in the dataset's order.
    """

    dataset: object
    source: str
    paths: list | None = None
    skipped: list = field(default_factory=list)


def labelled_data(data, image_size, batch_size=32, class_names=None):
    """`data` as `LabelledData`.

    Args:
        data: A folder with cat(s)/ and dog(s)/ sub-folders,
            `"tfds:cats_vs_dogs[:SPLIT]"` (default split: the recipe's
            validation part), a `tf.data.Dataset` of (image, label) pairs,
            batched or not, an `(images, labels)` pair of arrays, or
            `LabelledData` itself.
        image_size: Side the images are resized to when they are decoded here.
        batch_size: Batch size for what is batched here.
        class_names: The model's classes: a folder's sub-folders named like
            them get their labels (default: cat and dog, or the folders).
    """
    if isinstance(data, LabelledData):
        return data
    if isinstance(data, tf.data.Dataset):
        return LabelledData(_batched(data, batch_size), source="dataset")
    if isinstance(data, (tuple, list)) and len(data) == 2:
        images, labels = np.asarray(data[0]), np.asarray(data[1], np.float32).reshape(-1)
        if images.ndim != 4 or len(images) != len(labels):
            raise DataError(
                f"expected (images, labels) with images of shape (n, height, width, channels) "
                f"and n labels, got {images.shape} and {labels.shape}"
            )
        dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch_size)
        return LabelledData(dataset, source="arrays")
    if isinstance(data, (str, os.PathLike)):
        spec = os.fspath(data)
        if is_tfds(spec):
            return tfds_split(spec, image_size, batch_size)
        files = list_labelled_files(spec, class_names=class_names)
        manifest = inspect_files(files.paths, files.labels, image_size)
        if not len(manifest):
            raise DataError(f"no usable images in {spec}")
        return LabelledData(
            manifest_dataset(manifest, image_size, batch_size),
            source=spec,
            paths=list(manifest.paths),
            skipped=list(files.skipped) + list(manifest.skipped),
        )
    raise DataError(f"cannot evaluate on a {type(data).__name__}: pass a folder, a tfds: spec, a dataset or (images, labels)")


def parse_tfds_spec(spec):
    """`tfds:cats_vs_dogs[:SPLIT]` -> SPLIT (default: the validation part)."""
    name, _, split = spec[len(TFDS_PREFIX):].partition(":")
    if (name or TFDS_NAME) != TFDS_NAME:
        raise ConfigError(f"only tfds:{TFDS_NAME}[:SPLIT] is supported, got {spec}")
    return split or TFDS_VAL_SPLIT


def tfds_split(spec, image_size, batch_size=32):
    """One split of TFDS `cats_vs_dogs`, e.g. `tfds:cats_vs_dogs:train[80%:]`."""
    return LabelledData(decoded_dataset(open_tfds_split(spec), image_size, batch_size), source=spec)


def open_tfds_split(spec):
    """The (image, label) pairs of the TFDS split a `tfds:` spec names, undecoded order kept.

    The one place evaluation opens TFDS (training opens its splits through
    `catdog.data.sources`); a failure is a `DataError` that says why.
    """
    split = parse_tfds_spec(spec)
    from catdog.data.tfds_source import describe_failure, missing_module, network_failure

    try:
        import tensorflow_datasets as tfds

        data_dir = os.environ.get("TFDS_DATA_DIR") or None  # read now, not at TFDS' import
        return tfds.load(TFDS_NAME, split=split, as_supervised=True, shuffle_files=False, data_dir=data_dir)
    except Exception as error:  # TFDS raises many types for bad splits and no data
        if missing_module(error) or network_failure(error) is not None:
            raise describe_failure(TFDS_NAME, error) from error
        raise DataError(
            f"TFDS {TFDS_NAME} split {split!r} is not available "
            f"({type(error).__name__}: {first_line(error, 200)}); offline, evaluate on a folder with --data DIR"
        ) from error


def _batched(dataset, batch_size):
    images_spec = dataset.element_spec[0]
    if images_spec.shape.rank == 3:
        return dataset.batch(batch_size)
    return dataset
