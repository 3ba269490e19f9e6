"""tf.data pipelines that feed raw, resized uint8 images to the model."""

import tensorflow as tf

from catdog.data.decode import load_image, resize_uint8
from catdog.data.inspect import as_arrays

AUTOTUNE = tf.data.AUTOTUNE


def manifest_dataset(
    manifest, image_size, batch_size, shuffle=False, seed=None, cache=False
):
    """Batches of (uint8 images, float labels) from an `ImageManifest`.

    Decoding runs in parallel and in order (`deterministic=True`), so a seed
    fixes the batches; augmentation is not here but in the model, where it is
    saved with it and runs on the accelerator.
    """
    paths, labels, use_pil = as_arrays(manifest)
    dataset = tf.data.Dataset.from_tensor_slices((paths, labels, use_pil))
    if shuffle and not cache:
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(
        lambda path, label, pil: (load_image(path, image_size, pil), label),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    if cache:
        dataset = dataset.cache(cache if isinstance(cache, str) else "")
        if shuffle:
            dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(AUTOTUNE)


def decoded_dataset(dataset, image_size, batch_size, shuffle=False, seed=None, size=None):
    """Batches from a dataset of already-decoded (image, label) pairs, e.g. TFDS."""
    if shuffle:
        dataset = dataset.shuffle(min(size or 10_000, 10_000), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.map(
        lambda image, label: (resize_uint8(image, image_size), tf.cast(label, tf.float32)),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    return dataset.batch(batch_size).prefetch(AUTOTUNE)
