"""tf.data pipelines that feed raw, resized uint8 images to the model."""

import hashlib
import os

import numpy as np
import tensorflow as tf

from catdog.data.decode import load_image, resize_uint8
from catdog.data.screening import as_arrays

AUTOTUNE = tf.data.AUTOTUNE

#: Decoded images are cached in memory automatically up to this many bytes
#: (2,000 images at 224x224 take 300 MB); more than that streams from disk so
#: memory does not grow with the dataset.
AUTO_CACHE_BYTES = 1 << 30
#: With a cache, batches are mixed by a shuffle buffer of at most this many
#: images, over a file order shuffled once: a full-size buffer would hold a
#: second copy of every image.
CACHED_SHUFFLE_BUFFER = 1024


def cache_fits(n_images, image_size, budget=AUTO_CACHE_BYTES):
    return n_images * image_size * image_size * 3 <= budget


def resolve_cache(cache, n_images, image_size):
    """"auto" | "memory" | "none" | a file path prefix -> tf.data cache argument."""
    if cache in (None, False, "none"):
        return None
    if cache == "auto":
        return "" if cache_fits(n_images, image_size) else None
    if cache in (True, "memory"):
        return ""
    return str(cache)


#: Bump when decoding changes what a file's cached pixels are.
CACHE_FORMAT = "catdog-pixels-2"


def keyed_cache(cache_to, paths, labels, use_pil, image_size):
    """A file cache prefix named after the data it holds; memory and none as they are.

    tf.data reads a cache file it finds whatever data it was written from;
    so the name ends in a hash of what goes in: every file (its path, size
    and modification time, in order), its label and decoder, the image size
    and the decoding version. Other data, or changed files, get another
    cache, never the old pixels.
    """
    if not cache_to:
        return cache_to
    digest = hashlib.sha256(f"{CACHE_FORMAT}|{image_size}|".encode())
    for path, label, pil in zip(paths, labels, use_pil):
        try:
            info = os.stat(path)
            stamp = f"{info.st_size}:{info.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        digest.update(bytes(path) + f"|{float(label)}|{bool(pil)}|{stamp}\n".encode())
    return f"{cache_to}-{digest.hexdigest()[:16]}"


def manifest_dataset(
    manifest, image_size, batch_size, shuffle=False, seed=None, cache="none", epochs=None
):
    """Batches of (uint8 images, float labels) from an `ImageManifest`.

    Decoding runs in parallel and in order (`deterministic=True`), so a seed
    fixes the batches. With a cache, each file is decoded once and later
    epochs read pixels from memory (or the cache file). Augmentation is not
    here but in the model, where it is saved with it and stays random per
    epoch even over cached pixels.

    With `shuffle` and `epochs=(first, last)` the result holds epochs
    `first` to `last - 1` one after the other, each epoch's order a function
    of `seed` and the epoch number alone (see `epoch_seed`): a run resumed at
    epoch 3 sees exactly the batches an uninterrupted run sees in epoch 3.
    Iterate it with `fit(..., steps_per_epoch=ceil(len(manifest) / batch_size))`.
    """
    paths, labels, use_pil = as_arrays(manifest)
    cache_to = resolve_cache(cache, len(paths), image_size)
    if shuffle and cache_to is not None:
        order = np.random.default_rng(seed).permutation(len(paths))
        paths, labels, use_pil = paths[order], labels[order], use_pil[order]
    cache_to = keyed_cache(cache_to, paths, labels, use_pil, image_size)
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels, use_pil))
    if shuffle and epochs is not None:
        return _keyed_epochs(dataset, image_size, batch_size, seed, cache_to, epochs)
    if shuffle and cache_to is None:
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(
        lambda path, label, pil: (load_image(path, image_size, pil), label),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    if cache_to is not None:
        dataset = dataset.cache(cache_to)
        if shuffle:
            buffer = min(len(paths), CACHED_SHUFFLE_BUFFER)
            dataset = dataset.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(AUTOTUNE)


def decoded_dataset(dataset, image_size, batch_size, shuffle=False, seed=None, size=None, cache="none", epochs=None):
    """Batches from a dataset of already-decoded (image, label) pairs, e.g. TFDS.

    `epochs=(first, last)` with `shuffle`: epochs keyed by number, as in
    `manifest_dataset`.
    """
    if shuffle and epochs is not None:
        buffer = min(size or 10_000, 10_000)

        def one_epoch(epoch):
            return decoded_dataset(
                dataset.shuffle(buffer, seed=epoch_seed(seed, epoch), reshuffle_each_iteration=False),
                image_size,
                batch_size,
            )

        return over_epochs(one_epoch, epochs)
    if shuffle:
        dataset = dataset.shuffle(min(size or 10_000, 10_000), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(
        lambda image, label: (resize_uint8(image, image_size), tf.cast(label, tf.float32)),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    cache_to = resolve_cache(cache, size or 0, image_size) if size else None
    if cache_to:  # a TFDS split: keyed by its size and the image size
        cache_to = f"{cache_to}-{CACHE_FORMAT}-{size}-{image_size}"
    if cache_to is not None and not shuffle:
        dataset = dataset.cache(cache_to)
    return dataset.batch(batch_size).prefetch(AUTOTUNE)


def epoch_seed(seed, epoch):
    """The shuffle seed of one epoch: depends on the run's seed and the epoch only."""
    return (int(seed or 0) * 1_000_003 + int(epoch)) % (2**31 - 1)


def over_epochs(one_epoch, epochs):
    """Epochs `first`..`last - 1` of `one_epoch(epoch)` (a dataset) in one dataset."""
    first, last = (int(e) for e in epochs)
    dataset = one_epoch(first)
    if last <= first:
        return dataset.take(0)
    for epoch in range(first + 1, last):
        dataset = dataset.concatenate(one_epoch(epoch))
    return dataset.prefetch(AUTOTUNE)


def _keyed_epochs(files, image_size, batch_size, seed, cache_to, epochs):
    def decode(path, label, pil):
        return load_image(path, image_size, pil), label

    n = max(int(files.cardinality()), 1)
    if cache_to is None:
        # Shuffle the file names (cheap), then decode in parallel, in order.
        def one_epoch(epoch):
            return (
                files.shuffle(n, seed=epoch_seed(seed, epoch), reshuffle_each_iteration=False)
                .map(decode, num_parallel_calls=AUTOTUNE, deterministic=True)
                .batch(batch_size)
            )

    else:
        # Decode once into the cache (shared by all epochs), then mix the
        # pixels with a bounded buffer over the once-shuffled file order.
        decoded = files.map(decode, num_parallel_calls=AUTOTUNE, deterministic=True).cache(cache_to)
        buffer = min(n, CACHED_SHUFFLE_BUFFER)

        def one_epoch(epoch):
            return decoded.shuffle(
                buffer, seed=epoch_seed(seed, epoch), reshuffle_each_iteration=False
            ).batch(batch_size)

    return over_epochs(one_epoch, epochs)
