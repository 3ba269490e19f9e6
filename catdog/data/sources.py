"""Where training data comes from: TFDS `cats_vs_dogs` or a folder of images."""

import math
from dataclasses import dataclass, field

import numpy as np

from catdog.data.folders import CLASS_NAMES, list_labelled_files
from catdog.data.screening import inspect_files
from catdog.data.pipeline import decoded_dataset, manifest_dataset
from catdog.data.tfds_source import check_tfds_split
from catdog.errors import ConfigError, DataError

TFDS_PREFIX = "tfds:"
TFDS_NAME = "cats_vs_dogs"
#: The seed recipe's split of TFDS' single `train` split.
TFDS_TRAIN_SPLIT, TFDS_VAL_SPLIT = "train[:80%]", "train[80%:]"


@dataclass
class DataSplits:
    """Train and validation pipelines with the counts a run report needs."""

    train: object
    validation: object
    counts: dict
    skipped: list = field(default_factory=list)
    source: str = ""
    #: The validation files (an `ImageManifest`) when they are files, for reports.
    validation_manifest: object = None
    #: `train_for_epochs(first, last)`: the training batches of epochs
    #: first..last-1 in one dataset, each epoch's order fixed by the seed and
    #: the epoch number (for resumable runs); iterate with `steps_per_epoch`.
    train_for_epochs: object = None
    steps_per_epoch: int | None = None
    #: Label i is class_names[i]: from the folders (cat, dog by default).
    class_names: tuple = CLASS_NAMES

    def summary(self):
        summary = {
            "source": self.source,
            "counts": self.counts,
            "skipped": len(self.skipped),
        }
        if tuple(self.class_names) != CLASS_NAMES:
            summary["class_names"] = list(self.class_names)
        return summary


def is_tfds(spec):
    return str(spec).startswith(TFDS_PREFIX)


def load_splits(
    data,
    val_data=None,
    image_size=224,
    batch_size=32,
    val_split=0.2,
    limit=None,
    seed=0,
    cache="auto",
):
    """Load training and validation pipelines from a folder or from TFDS.

    These are the very pipelines `catdog train` fits on, so a custom training
    loop or a look at the data sees the photos the model would see: every
    file is screened once (unreadable ones are skipped and listed, not
    fatal), decoded as `catdog predict` decodes it and resized to
    `image_size`; batches are `(uint8 images, float32 labels)`, label `i`
    being `class_names[i]`. A folder without `val_data` is split per class
    with `seed`, so both parts keep the class balance.

    Args:
        data: A folder with a sub-folder per class (`cat(s)/` and `dog(s)/`,
            or one per class name), or `"tfds:cats_vs_dogs"` (TFDS'
            `cats_vs_dogs`, split 80/20, the split `catdog evaluate` also
            holds out: another `val_split`, or a `val_data`, is refused).
        val_data: A folder of validation photos with the same class
            sub-folders; then `data` is all training data. Defaults to
            `None`: `val_split` of `data` is held out.
        image_size: Side of the square images in the batches. Defaults to
            `224`.
        batch_size: Images per batch. Defaults to `32`.
        val_split: Share of each class of `data` held out for validation
            when there is no `val_data`, between 0 and 1. Defaults to `0.2`.
        limit: Use at most this many training images (a sample drawn with
            `seed`; the first ones for TFDS). Defaults to `None`: all.
        seed: Fixes the validation split, the `limit` sample and the
            shuffling. Defaults to `0`.
        cache: Where decoded images are kept for later epochs: `"auto"`
            (in memory, each split that fits in 1 GiB), `"memory"`,
            `"none"`, or a file prefix. Defaults to `"auto"`.

    Returns:
        A `DataSplits`: `train` and `validation` (batched `tf.data.Dataset`s),
        `counts`, the `skipped` files, `class_names` and `steps_per_epoch`.

    Raises:
        DataError: no usable images, a class without training images, or no
            validation images.
        ConfigError: `limit` below 1, `val_split` not between 0 and 1, or a
            TFDS name other than `cats_vs_dogs`.

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> from PIL import Image
    >>> import catdog
    >>> folder = tempfile.mkdtemp()
    >>> for name, grey in (("cats", 60), ("dogs", 190)):
    ...     os.makedirs(os.path.join(folder, name))
    ...     for i in range(5):
    ...         photo = np.full((40, 48, 3), grey + i, "uint8")
    ...         Image.fromarray(photo).save(os.path.join(folder, name, f"{i}.jpg"))
    >>> splits = catdog.load_splits(folder, image_size=32, batch_size=4)
    >>> splits.class_names, splits.steps_per_epoch
    (('cat', 'dog'), 2)
    >>> splits.counts
    {'train': 8, 'validation': 2, 'train_per_class': {'cat': 4, 'dog': 4},
     'validation_per_class': {'cat': 1, 'dog': 1}, 'skipped': 0}
    >>> images, labels = next(iter(splits.train))
    >>> tuple(images.shape), images.dtype.name, labels.dtype.name
    ((4, 32, 32, 3), 'uint8', 'float32')
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be at least 1, got {limit}")
    if is_tfds(data):
        check_tfds_split(data, val_data, val_split)
        return load_tfds_splits(data, image_size, batch_size, limit, seed, cache)
    files = list_labelled_files(data)
    train = inspect_files(files.paths, files.labels, image_size)
    train.class_names = files.class_names
    skipped = files.skipped + train.skipped
    if val_data is not None:
        val_files = list_labelled_files(val_data, class_names=files.class_names)
        validation = inspect_files(val_files.paths, val_files.labels, image_size)
        validation.class_names = files.class_names
        skipped += val_files.skipped + validation.skipped
    else:
        if not 0.0 < val_split < 1.0:
            raise ConfigError(f"val_split must be between 0 and 1, got {val_split}")
        train_idx, val_idx = stratified_split(train.labels, val_split, seed)
        train, validation = train.subset(train_idx), train.subset(val_idx)
    if limit is not None and limit < len(train):
        order = np.random.default_rng(seed).permutation(len(train))[:limit]
        train = train.subset(sorted(order))
    require_both_classes(train, f"training data in {data}")
    if len(validation) == 0:
        raise DataError(f"no usable validation images ({val_data or data})")
    return DataSplits(
        train=manifest_dataset(train, image_size, batch_size, shuffle=True, seed=seed, cache=cache),
        validation=manifest_dataset(validation, image_size, batch_size, cache=_split_cache(cache, "val")),
        counts={
            "train": len(train),
            "validation": len(validation),
            "train_per_class": train.counts(),
            "validation_per_class": validation.counts(),
            "skipped": len(skipped),
        },
        skipped=skipped,
        source=str(data),
        validation_manifest=validation,
        train_for_epochs=lambda first, last: manifest_dataset(
            train, image_size, batch_size, shuffle=True, seed=seed, cache=cache, epochs=(first, last)
        ),
        steps_per_epoch=math.ceil(len(train) / batch_size),
        class_names=tuple(files.class_names),
    )


def require_both_classes(manifest, what):
    """Every class has training images (both, for cats vs dogs)."""
    counts = manifest.counts()
    if len(manifest) == 0:
        raise DataError(f"no usable images in {what}")
    missing = [name for name, n in counts.items() if n == 0]
    if missing:
        needed = "both classes are needed" if len(counts) == 2 else "every class needs some"
        raise DataError(f"{what} has no {missing[0]} images: {needed}")


def stratified_split(labels, fraction, seed):
    """(train indices, validation indices), `fraction` of each class held out."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    train, val = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_val = int(round(len(members) * fraction))
        if len(members) > 1:
            n_val = min(max(n_val, 1), len(members) - 1)
        val.extend(members[:n_val].tolist())
        train.extend(members[n_val:].tolist())
    return sorted(train), sorted(val)


def _split_cache(cache, suffix):
    """A file cache needs one prefix per split; memory/auto/none are shared."""
    if cache in (None, False, True, "auto", "memory", "none"):
        return cache
    return f"{cache}-{suffix}"


def load_tfds_splits(spec, image_size, batch_size, limit=None, seed=0, cache="auto"):
    """TFDS `cats_vs_dogs` with the 80/20 split (cat=0, dog=1).

    TFDS itself drops the 1,738 unreadable files of the original archive.
    """
    name = spec[len(TFDS_PREFIX):] or TFDS_NAME
    if name != TFDS_NAME:
        raise ConfigError(f"only tfds:{TFDS_NAME} is supported, got {spec}")
    from catdog.data.tfds_source import open_tfds

    (train, validation), info = open_tfds(
        TFDS_NAME, split=[TFDS_TRAIN_SPLIT, TFDS_VAL_SPLIT], as_supervised=True, shuffle_files=False
    )
    n_train, n_val = _tfds_size(train, info, TFDS_TRAIN_SPLIT), _tfds_size(validation, info, TFDS_VAL_SPLIT)
    if limit is not None and limit < n_train:
        train, n_train = train.take(limit), limit
    return DataSplits(
        train=decoded_dataset(train, image_size, batch_size, shuffle=True, seed=seed, size=n_train),
        validation=decoded_dataset(validation, image_size, batch_size, size=n_val, cache=_split_cache(cache, "val")),
        counts={"train": n_train, "validation": n_val, "skipped": 0},
        skipped=[],
        source=spec,
        train_for_epochs=lambda first, last: decoded_dataset(
            train, image_size, batch_size, shuffle=True, seed=seed, size=n_train, epochs=(first, last)
        ),
        steps_per_epoch=math.ceil(n_train / batch_size),
    )


def _tfds_size(dataset, info, split):
    known = int(dataset.cardinality())
    return known if known >= 0 else info.splits[split].num_examples
