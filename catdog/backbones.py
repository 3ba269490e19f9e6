"""Backbones by name: each `keras.applications` family with its input convention.

A backbone maps images to a feature map. Each one here comes with what a
classifier needs to use it right (KerasHub pairs a backbone with its
preprocessor the same way): the `ImagePreprocessor` mode equal to its
family's `keras.applications.<family>.preprocess_input`, and the first layer
fine-tuned by default (the start of a late stage, as Keras' and TensorFlow's
fine-tuning guides pick). Any other Keras model or layer that maps images to
a feature map can be passed as an object instead of a name.
"""

import os
from dataclasses import dataclass

import keras

from catdog.errors import ConfigError, WeightsUnavailableError

from catdog.defaults import DEFAULT_BACKBONE, DEFAULT_FINE_TUNE_AT  # noqa: F401  (re-exported)


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

    What `build_backbone("MobileNetV2", ...)` builds. It finds the ImageNet
    weights in a read-only `$KERAS_HOME/models` (a shared folder, a container
    image), where Keras' downloader wants a writable cache, and turns a failed
    download into an error that says where to put the file.

    Args:
        image_size: Square input size; ImageNet weights exist for 96, 128,
            160, 192 and 224. Defaults to `224`.
        alpha: Width multiplier (1.0 is the standard network). Defaults to `1.0`.
        weights: `"imagenet"`, a path to a weights file, or `None` (random).
            Defaults to `"imagenet"`.

    Returns:
        A `keras.Model` from images to a feature map of 1280 channels (for
        alpha <= 1).

    Raises:
        WeightsUnavailableError: ImageNet weights are not cached and cannot
            be downloaded, or the weights file does not exist.

    Example:

    >>> import catdog
    >>> backbone = catdog.build_mobilenet_v2(image_size=32, alpha=0.35, weights=None)
    >>> backbone.output_shape, len(backbone.layers)
    ((None, 1, 1, 1280), 154)
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


@dataclass(frozen=True)
class BackboneSpec:
    """A named backbone: how to build it and feed it.

    Attributes:
        name: Its `keras.applications` name, e.g. "EfficientNetB0".
        family: The `keras.applications` module holding its `preprocess_input`.
        preprocessing: The `ImagePreprocessor` mode that equals that function
            ("none" where Keras normalises inside the model).
        fine_tune_at: Default first fine-tuned layer, a name or an index.
        model_name: The name Keras gives the model, to recognise an object.
        has_alpha: Takes a width multiplier (the MobileNets).
    """

    name: str
    family: str
    preprocessing: str
    fine_tune_at: object
    model_name: str
    has_alpha: bool = False

    def build(self, image_size=224, weights="imagenet", alpha=1.0):
        """The backbone without its top, for square RGB input of `image_size`."""
        if self.name == "MobileNetV2":  # with its read-only-cache lookup
            return build_mobilenet_v2(image_size, alpha, weights)
        if weights not in ("imagenet", None) and not os.path.isfile(str(weights)):
            raise WeightsUnavailableError(f"weights file not found: {weights}")
        kwargs = {"alpha": alpha} if self.has_alpha else {}
        application = getattr(keras.applications, self.name)
        try:
            return application(
                input_shape=(image_size, image_size, 3), include_top=False, weights=weights, **kwargs
            )
        except Exception as error:  # Keras raises bare Exception on fetch failure
            if weights is None:
                raise
            if weights != "imagenet":
                raise WeightsUnavailableError(f"could not load weights from {weights}: {error}") from error
            if "fetch failure" not in str(error) and "URL" not in str(error):
                raise
            raise WeightsUnavailableError(
                f"ImageNet weights for {self.name} could not be downloaded (offline?). Put Keras' "
                f"weights file for it into $KERAS_HOME/models (KERAS_HOME defaults to ~/.keras), "
                "or pass a weights file with --weights PATH (weights=PATH)"
            ) from error


def _efficientnet(name, fine_tune_at="block6a_expand_conv"):
    return BackboneSpec(name, "efficientnet", "none", fine_tune_at, name.lower())


def _efficientnet_v2(suffix):
    name = f"EfficientNetV2{suffix}"
    return BackboneSpec(name, "efficientnet_v2", "none", "block6a_expand_conv", f"efficientnetv2-{suffix.lower()}")


BACKBONES = {
    spec.name: spec
    for spec in [
        BackboneSpec("MobileNetV2", "mobilenet_v2", "tf", DEFAULT_FINE_TUNE_AT, "mobilenetv2_", has_alpha=True),
        BackboneSpec("MobileNetV3Small", "mobilenet_v3", "none", "expanded_conv_7_expand", "MobileNetV3Small", has_alpha=True),
        BackboneSpec("MobileNetV3Large", "mobilenet_v3", "none", "expanded_conv_10_expand", "MobileNetV3Large", has_alpha=True),
        *[_efficientnet(f"EfficientNetB{i}") for i in range(4)],
        *[_efficientnet_v2(suffix) for suffix in ("B0", "B1", "B2", "B3", "S")],
        BackboneSpec("ResNet50", "resnet", "caffe", "conv5_block1_1_conv", "resnet50"),
        BackboneSpec("ResNet50V2", "resnet_v2", "tf", "conv5_block1_preact_bn", "resnet50v2"),
        BackboneSpec("ConvNeXtTiny", "convnext", "none", "convnext_tiny_downsampling_block_2", "convnext_tiny"),
        BackboneSpec("DenseNet121", "densenet", "torch", "conv5_block1_0_bn", "densenet121"),
    ]
}


def _key(name):
    return str(name).lower().replace("_", "").replace("-", "")


_BY_KEY = {_key(name): spec for name, spec in BACKBONES.items()}


def backbone_names():
    return list(BACKBONES)


def get_spec(name):
    """The `BackboneSpec` of a name, spelled as Keras does or loosely ("efficientnet_b0")."""
    spec = _BY_KEY.get(_key(name))
    if spec is None:
        raise ConfigError(f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}, or pass a Keras model")
    return spec


def spec_of_model(model):
    """The spec of a `keras.applications` model passed as an object, or None."""
    name = getattr(model, "name", "")
    for spec in BACKBONES.values():
        if name == spec.model_name or (spec.model_name.endswith("_") and name.startswith(spec.model_name)):
            return spec
    return None


def build_backbone(name, image_size=224, weights="imagenet", alpha=1.0):
    """Build a named backbone (see `BACKBONES`) without its classification top.

    Each name comes with the input convention and default fine-tuning cut
    that `ImageClassifier` looks up, so a name is all a classifier needs.
    MobileNetV2's ImageNet weights are also found in a read-only
    `$KERAS_HOME/models`.

    Args:
        name: A key of `BACKBONES`, spelled as Keras does or loosely
            (`"efficientnet_b0"`).
        image_size: Side of the square RGB input. Defaults to `224`.
        weights: `"imagenet"`, a path to a weights file, or `None` (random).
            Defaults to `"imagenet"`.
        alpha: Width multiplier of the MobileNets; ignored by the others.
            Defaults to `1.0`.

    Returns:
        A `keras.Model` from images to a feature map.

    Raises:
        ConfigError: `name` is not a known backbone.
        WeightsUnavailableError: the weights are neither cached nor
            downloadable, or the weights file does not exist.

    Example:

    >>> import catdog
    >>> backbone = catdog.build_backbone("mobilenet_v2", image_size=32, alpha=0.35, weights=None)
    >>> backbone.output_shape, len(backbone.layers)
    ((None, 1, 1, 1280), 154)
    >>> catdog.BACKBONES["MobileNetV2"].preprocessing  # ImagePreprocessor(mode="tf")
    'tf'
    """
    return get_spec(name).build(image_size, weights, alpha)


def preprocessing_for(backbone):
    """Return the `ImagePreprocessor` mode that a backbone expects.

    Each `keras.applications` family was trained on pixels scaled its own way
    (its `preprocess_input`); a backbone fed another range still runs, but
    its pretrained features are off and accuracy quietly suffers.
    `ImageClassifier` asks this function when `preprocessing=` is not given,
    and refuses to guess for a backbone it does not know.

    Args:
        backbone: A name of `BACKBONES` (spelled as Keras does or loosely,
            `"efficientnet_b0"`), or a Keras model; a model is recognised
            by the name `keras.applications` gives it.

    Returns:
        `"tf"` ([-1, 1]), `"torch"`, `"caffe"` or `"none"` (0..255 as they
        are: the model normalises inside), as `ImagePreprocessor`'s `mode`.

    Raises:
        ConfigError: the name is not in `BACKBONES`, or the model is not one
            catdog recognises: pass `preprocessing=` yourself rather than
            feed it a wrong range.

    Example:

    >>> import keras
    >>> import catdog
    >>> catdog.preprocessing_for("MobileNetV2"), catdog.preprocessing_for("resnet50")
    ('tf', 'caffe')
    >>> catdog.preprocessing_for("efficientnet_b0")  # normalises inside the model
    'none'
    >>> backbone = catdog.build_mobilenet_v2(image_size=32, alpha=0.35, weights=None)
    >>> catdog.preprocessing_for(backbone)
    'tf'
    >>> mine = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3)], name="mine")
    >>> try:
    ...     catdog.preprocessing_for(mine)
    ... except catdog.ConfigError as error:
    ...     print(error)
    catdog does not know the input convention of backbone 'mine': pass preprocessing='tf' ([-1, 1]), ...
    """
    spec = get_spec(backbone) if isinstance(backbone, str) else spec_of_model(backbone)
    if spec is None:
        raise ConfigError(
            f"catdog does not know the input convention of backbone {getattr(backbone, 'name', backbone)!r}: "
            "pass preprocessing='tf' ([-1, 1]), 'torch', 'caffe' or 'none' (0..255)"
        )
    return spec.preprocessing


def default_fine_tune_at(backbone):
    """The default first fine-tuned layer of a backbone (name or model), or None if unknown."""
    spec = get_spec(backbone) if isinstance(backbone, str) else spec_of_model(backbone)
    return spec.fine_tune_at if spec is not None else None
