"""Raw pixels in, the backbone's input convention out."""

import keras
from keras import ops

#: Input conventions of `keras.applications`, as `imagenet_utils.preprocess_input`
#: names them, plus "none" for models that normalise inside (EfficientNet,
#: MobileNetV3, ConvNeXt): "tf" [-1, 1]; "torch" [0, 1] then ImageNet mean and
#: std per RGB channel; "caffe" RGB -> BGR then ImageNet mean subtracted.
MODES = ("tf", "torch", "caffe", "none")
_TORCH_MEAN, _TORCH_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def scale_pixels(x, mode="tf"):
    """0..255 RGB floats -> the input `mode` names, as Keras' `preprocess_input` computes it."""
    if mode == "tf":
        return x / 127.5 - 1.0
    if mode == "torch":
        x = x / 255.0
        mean = ops.convert_to_tensor(_TORCH_MEAN, x.dtype)
        std = ops.convert_to_tensor(_TORCH_STD, x.dtype)
        return (x - mean) / std
    if mode == "caffe":
        return ops.flip(x, axis=-1) - ops.convert_to_tensor(_CAFFE_MEAN_BGR, x.dtype)
    if mode == "none":
        return x
    raise ValueError(f"preprocessing mode must be one of {', '.join(MODES)}, got {mode!r}")


def as_size_pair(size):
    """224 -> (224, 224); (h, w) stays as it is."""
    if isinstance(size, int):
        return (size, size)
    height, width = size
    return (int(height), int(width))


@keras.saving.register_keras_serializable(package="catdog")
class ImagePreprocessor(keras.layers.Layer):
    """Resizes raw images and scales them as the backbone expects.

    It lives inside the model, so the saved `.keras` file takes the raw 0..255
    pixels (uint8 or float) that users have: there is no second copy of the
    preprocessing to keep in step with training. One- and four-channel images
    are turned into RGB, and a single image (rank 3) is treated as a batch of
    one.

    Args:
        image_size: Output height and width, an int or a `(height, width)`
            pair. Defaults to `224`.
        interpolation: Resize method (see `keras.ops.image.resize`). Defaults
            to `"bilinear"`.
        mode: The backbone's input convention, one of `MODES`: `"tf"` (scaled
            to [-1, 1], MobileNetV2's), `"torch"`, `"caffe"` or `"none"`
            (0..255 as they are). Saved in the config, so a `.keras` file says
            what its backbone was fed; files written before `mode` existed
            mean `"tf"`. Defaults to `"tf"`.
        quantize_resized: Round a resized image to whole 0..255 levels, as
            catdog's data pipeline does, so a photo of any size gets the same
            probabilities from the model as from `catdog predict` (files saved
            before this option existed were trained on such pixels). Defaults
            to `True`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Example:

    >>> import numpy as np
    >>> import catdog
    >>> layer = catdog.ImagePreprocessor(image_size=32)  # mode="tf": [-1, 1]
    >>> photos = np.zeros((2, 48, 64, 1), dtype="uint8")  # grey, any size
    >>> out = np.asarray(layer(photos))
    >>> out.shape, float(out.min())
    ((2, 32, 32, 3), -1.0)
    >>> pixel = np.array([0, 127.5, 255]).reshape(1, 1, 3)  # one 1x1 RGB image
    >>> np.asarray(catdog.ImagePreprocessor(image_size=1)(pixel)).ravel().tolist()
    [-1.0, 0.0, 1.0]
    """

    def __init__(self, image_size=224, interpolation="bilinear", mode="tf", quantize_resized=True, **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.image_size = as_size_pair(image_size)
        self.interpolation = interpolation
        self.mode = mode
        self.quantize_resized = bool(quantize_resized)

    def call(self, images):
        x = ops.convert_to_tensor(images)
        if len(x.shape) == 3:
            x = ops.expand_dims(x, 0)
        channels = x.shape[-1]
        if channels == 1:
            x = ops.repeat(x, 3, axis=-1)
        elif channels == 4:
            x = x[..., :3]
        if tuple(x.shape[1:3]) != self.image_size:
            # The pipeline's arithmetic, op for op: resize in float32 (on
            # TensorFlow the same tf.image.resize kernel as resize_uint8),
            # then round to whole levels and clip. Mixed precision casts after.
            x = ops.image.resize(
                ops.cast(x, "float32"), self.image_size, interpolation=self.interpolation
            )
            if self.quantize_resized:
                x = ops.clip(ops.round(x), 0.0, 255.0)
        x = ops.cast(x, self.compute_dtype)
        return scale_pixels(x, self.mode)

    def compute_output_shape(self, input_shape):
        batch = input_shape[0] if len(input_shape) == 4 else 1
        return (batch, *self.image_size, 3)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": list(self.image_size),
                "interpolation": self.interpolation,
                "mode": self.mode,
                "quantize_resized": self.quantize_resized,
            }
        )
        return config
