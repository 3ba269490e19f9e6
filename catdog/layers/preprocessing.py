"""Raw pixels in, MobileNetV2 input out."""

import keras
from keras import ops


def as_size_pair(size):
    """224 -> (224, 224); (h, w) stays as it is."""
    if isinstance(size, int):
        return (size, size)
    height, width = size
    return (int(height), int(width))


@keras.saving.register_keras_serializable(package="catdog")
class ImagePreprocessor(keras.layers.Layer):
    """Resizes raw images and scales them to MobileNetV2's [-1, 1] range.

    It lives inside the model, so the saved `.keras` file takes the same raw
    0..255 pixels (uint8 or float) that users have: there is no second copy of
    the preprocessing to keep in step with training. One- and four-channel
    images are turned into RGB, and a single image (rank 3) is treated as a
    batch of one.

    Args:
        image_size: Output height and width, an int or a `(height, width)` pair.
        interpolation: Resize method (see `keras.ops.image.resize`).
    """

    def __init__(self, image_size=224, interpolation="bilinear", **kwargs):
        super().__init__(**kwargs)
        self.image_size = as_size_pair(image_size)
        self.interpolation = interpolation

    def call(self, images):
        x = ops.convert_to_tensor(images)
        if len(x.shape) == 3:
            x = ops.expand_dims(x, 0)
        x = ops.cast(x, self.compute_dtype)
        channels = x.shape[-1]
        if channels == 1:
            x = ops.repeat(x, 3, axis=-1)
        elif channels == 4:
            x = x[..., :3]
        if tuple(x.shape[1:3]) != self.image_size:
            x = ops.image.resize(
                x, self.image_size, interpolation=self.interpolation
            )
        return x / 127.5 - 1.0

    def compute_output_shape(self, input_shape):
        batch = input_shape[0] if len(input_shape) == 4 else 1
        return (batch, *self.image_size, 3)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"image_size": list(self.image_size), "interpolation": self.interpolation}
        )
        return config
