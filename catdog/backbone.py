"""The MobileNetV2 feature extractor, with an offline-friendly weight lookup."""

import os

import keras

from catdog.errors import WeightsUnavailableError

from catdog.defaults import DEFAULT_FINE_TUNE_AT  # noqa: F401 (re-exported)


def imagenet_weights_filename(alpha=1.0, image_size=224):
    """The file name Keras caches MobileNetV2 no-top ImageNet weights under."""
    return (
        "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_"
        f"{float(alpha)}_{image_size}_no_top.h5"
    )


def cached_imagenet_weights(alpha=1.0, image_size=224):
    """Path of the cached ImageNet weights in `$KERAS_HOME/models`, or None.

    Looked up directly so a read-only cache (a shared folder, a container
    image) works even though Keras' downloader wants a writable cache.
    """
    home = keras.config.keras_home() if hasattr(keras.config, "keras_home") else None
    home = home or os.environ.get("KERAS_HOME") or os.path.expanduser("~/.keras")
    path = os.path.join(home, "models", imagenet_weights_filename(alpha, image_size))
    return path if os.path.isfile(path) else None


def build_mobilenet_v2(image_size=224, alpha=1.0, weights="imagenet"):
    """MobileNetV2 without its top, for `image_size` x `image_size` RGB input.

    Args:
        image_size: Square input size; ImageNet weights exist for 96, 128,
            160, 192 and 224.
        alpha: Width multiplier (1.0 is the standard network).
        weights: `"imagenet"`, a path to a weights file, or `None` (random).

    Raises:
        WeightsUnavailableError: ImageNet weights are not cached and cannot
            be downloaded, or the weights file does not exist.
    """
    if weights not in ("imagenet", None) and not os.path.isfile(str(weights)):
        raise WeightsUnavailableError(f"weights file not found: {weights}")
    source = weights
    if weights == "imagenet":
        source = cached_imagenet_weights(alpha, image_size) or "imagenet"
    try:
        return keras.applications.MobileNetV2(
            input_shape=(image_size, image_size, 3),
            alpha=alpha,
            include_top=False,
            weights=source,
        )
    except Exception as error:  # Keras raises bare Exception on fetch failure.
        if source != "imagenet":
            raise WeightsUnavailableError(
                f"could not load weights from {weights}: {error}"
            ) from error
        if "fetch failure" not in str(error) and "URL" not in str(error):
            raise
        name = imagenet_weights_filename(alpha, image_size)
        raise WeightsUnavailableError(
            "ImageNet weights for MobileNetV2 could not be downloaded (offline?). "
            f"Put {name} into $KERAS_HOME/models (KERAS_HOME defaults to ~/.keras), "
            "or pass a weights file with --weights PATH (weights=PATH)"
        ) from error
