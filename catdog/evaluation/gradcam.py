"""Grad-CAM: which pixels drove a catdog decision.

The classic recipe, `keras.Model(model.inputs, [model.get_layer(...).output,
model.output])`, breaks on catdog models: MobileNetV2 is a model nested
inside a subclassed model, so its layers are not on the outer graph. Here the
pieces are chained by hand instead (preprocessor -> backbone -> head) under a
gradient tape that watches the backbone's *input*, so every op from there to
the output is recorded whatever the frozen backbone's variables are, and the
gradient reaches an inner layer of the nested backbone as well as its output.

Needs the TensorFlow backend (Keras' default for catdog).
"""


import keras
import numpy as np
from keras import ops

from catdog.errors import ConfigError

#: What a heat map explains: the predicted class, or one class whatever the prediction.
TARGETS = ("predicted", "dog", "cat")


def explain(model, image, layer=None, target="predicted"):
    """Grad-CAM heat map of one image, at the image's own size.

    Shows which pixels drove the decision, to check that the model looks at
    the animal and not at the background. It works on catdog's nested
    backbone, where the usual `keras.Model(model.inputs, [layer.output,
    model.output])` recipe cannot reach the backbone's layers. Needs the
    TensorFlow backend.

    Args:
        model: A catdog classifier, e.g. loaded with `load_model`.
        image: Raw pixels (height, width, channels), 0..255, any size; or a
            path to an image file.
        layer: Backbone layer whose activations are weighted (name or
            index). Defaults to `None`: the backbone's output (7x7 for
            MobileNetV2 at 224).
        target: `"predicted"` explains the class the model chose; a class
            name (`"dog"`, `"cat"`) the evidence for that class. Defaults to
            `"predicted"`.

    Returns:
        float32 array (height, width) in [0, 1]; 1 marks the pixels that most
        support the target class, all zeros if none does.

    Raises:
        ConfigError: an unknown `target`, or a backend other than
            TensorFlow.

    Example:

    >>> import numpy as np
    >>> import catdog
    >>> model = catdog.CatDogClassifier(image_size=32, alpha=0.35, weights=None)
    >>> image = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype="uint8")
    >>> heat_map = catdog.explain(model, image, target="dog")
    >>> heat_map.shape, heat_map.dtype.name
    ((48, 40), 'float32')
    >>> bool(0.0 <= heat_map.min() <= heat_map.max() <= 1.0)
    True
    """
    pixels = load_pixels(image)
    heat_map = class_activation_maps(model, pixels[None], layer, target)[0]
    return resize_heat_map(heat_map, pixels.shape[:2])


def class_activation_maps(model, images, layer=None, target="predicted"):
    """Grad-CAM maps of a batch at the chosen layer's resolution, each scaled to [0, 1]."""
    if keras.backend.backend() != "tensorflow":
        raise ConfigError(
            f"Grad-CAM needs the TensorFlow backend, this is {keras.backend.backend()} "
            "(set KERAS_BACKEND=tensorflow)"
        )
    names = list(getattr(model, "class_names", None) or TARGETS[1:][::-1])
    if target != "predicted" and target not in names:
        raise ConfigError(f"target must be one of {', '.join(['predicted', *names])}, got {target!r}")
    import tensorflow as tf

    features_of = _feature_model(model.backbone, layer)
    with tf.GradientTape() as tape:
        inputs = model.preprocessor(images)
        tape.watch(inputs)
        feature_map, backbone_output = features_of(inputs, training=False)
        logit = _logit(model, backbone_output)
        if logit.shape[-1] == 1:  # one sigmoid unit: P(second class)
            if target == "predicted":
                sign = ops.where(logit >= 0, 1.0, -1.0)
            else:
                sign = 1.0 if target == names[1] else -1.0
            score = ops.sum(ops.stop_gradient(sign) * logit)
        else:  # softmax: the chosen class's logit
            index = ops.argmax(logit, axis=-1) if target == "predicted" else ops.full((logit.shape[0],), names.index(target))
            score = ops.sum(ops.stop_gradient(ops.one_hot(index, logit.shape[-1])) * logit)
    gradients = tape.gradient(score, feature_map)
    if gradients is None:
        raise RuntimeError("no gradient reached the feature map")  # would be a catdog bug
    weights = ops.mean(ops.cast(gradients, "float32"), axis=(1, 2), keepdims=True)
    maps = ops.relu(ops.sum(weights * ops.cast(feature_map, "float32"), axis=-1))
    peak = ops.max(maps, axis=(1, 2), keepdims=True)
    maps = ops.where(peak > 0, maps / ops.maximum(peak, 1e-12), 0.0)
    return ops.convert_to_numpy(maps)


def resize_heat_map(heat_map, size):
    """Bilinear resize of one (h, w) map to `size` = (height, width), kept in [0, 1]."""
    resized = ops.image.resize(
        ops.convert_to_tensor(np.asarray(heat_map, np.float32)[None, ..., None]),
        tuple(int(s) for s in size),
        interpolation="bilinear",
    )
    return np.clip(ops.convert_to_numpy(resized)[0, ..., 0], 0.0, 1.0).astype(np.float32)


def overlay(image, heat_map, opacity=0.45, colormap="jet"):
    """The image with the heat map blended over it, as RGB uint8."""
    from matplotlib import colormaps

    pixels = load_pixels(image).astype(np.float32)[..., :3]
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    heat_map = np.asarray(heat_map, np.float32)
    if heat_map.shape != pixels.shape[:2]:
        heat_map = resize_heat_map(heat_map, pixels.shape[:2])
    colours = colormaps[colormap](heat_map)[..., :3] * 255.0
    blended = (1.0 - opacity) * pixels + opacity * colours
    return np.clip(np.round(blended), 0, 255).astype(np.uint8)


def load_pixels(image, max_side=None):
    """An image file or array as a (height, width, channels) array.

    With `max_side`, large files are decoded and shrunk to fit it.
    """
    if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__"):
        from PIL import Image

        from catdog.data.decode import decode_pil

        pixels = decode_pil(str(image), max_side)
        if max_side is not None and max(pixels.shape[:2]) > max_side:
            picture = Image.fromarray(pixels)
            picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            pixels = np.asarray(picture)
        return pixels
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3:
        raise ConfigError(f"expected one image (height, width, channels), got shape {pixels.shape}")
    return pixels


def _feature_model(backbone, layer):
    """inputs -> (feature map to explain, backbone output), as one callable."""
    if layer is None:

        def last_feature_map(inputs, training=False):
            output = backbone(inputs, training=training)
            return output, output

        return last_feature_map
    try:
        chosen = backbone.get_layer(index=layer) if isinstance(layer, int) else backbone.get_layer(layer)
    except ValueError:
        raise ConfigError(f"the backbone has no layer {layer!r}") from None
    return keras.Model(backbone.inputs, [chosen.output, backbone.output], name="gradcam_features")


def _logit(model, features):
    """The head's pre-sigmoid output: gradients of P(dog) vanish where it saturates."""
    pooled = ops.cast(model.pool(features), "float32")
    classifier = model.classifier
    return ops.matmul(pooled, classifier.kernel) + classifier.bias
