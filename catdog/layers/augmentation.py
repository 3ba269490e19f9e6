"""Photo augmentation built from Keras core's random image layers."""

import keras

#: Defaults that keep a cat a cat: mirror images are still photos, but the
#: world is rarely upside down and animals fill most of the frame.
DEFAULT_FLIP = "horizontal"
DEFAULT_ROTATION = 0.1
DEFAULT_ZOOM = 0.1


@keras.saving.register_keras_serializable(package="catdog")
class ImageAugmentation(keras.layers.Layer):
    """Random flip, rotation and zoom, applied only when `training=True`.

    A layer rather than a `tf.data` map so it saves with the model and runs on
    any backend; at inference it is the identity, so the artifact predicts on
    raw images unchanged.

    Args:
        flip: `"horizontal"`, `"vertical"`, `"horizontal_and_vertical"`, or
            `None` for no flipping.
        rotation: Fraction of a full turn (0.1 = up to +/-36 degrees); 0 = off.
        zoom: Fraction to zoom in or out by (0.1 = +/-10%); 0 = off.
        fill_mode: How pixels outside the rotated/zoomed image are filled.
        seed: Seed for the random transforms, for reproducible runs.
    """

    def __init__(
        self,
        flip=DEFAULT_FLIP,
        rotation=DEFAULT_ROTATION,
        zoom=DEFAULT_ZOOM,
        fill_mode="reflect",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.flip = flip
        self.rotation = float(rotation)
        self.zoom = float(zoom)
        self.fill_mode = fill_mode
        self.seed = seed
        self.steps = []
        if flip:
            self.steps.append(keras.layers.RandomFlip(flip, seed=seed))
        if self.rotation:
            self.steps.append(
                keras.layers.RandomRotation(
                    self.rotation, fill_mode=fill_mode, seed=_offset(seed, 1)
                )
            )
        if self.zoom:
            self.steps.append(
                keras.layers.RandomZoom(
                    self.zoom, fill_mode=fill_mode, seed=_offset(seed, 2)
                )
            )

    def build(self, input_shape):
        for step in self.steps:
            step.build(input_shape)
        self.built = True

    def call(self, images, training=None):
        if not training:
            return images
        for step in self.steps:
            images = step(images, training=True)
        return images

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "flip": self.flip,
                "rotation": self.rotation,
                "zoom": self.zoom,
                "fill_mode": self.fill_mode,
                "seed": self.seed,
            }
        )
        return config


def _offset(seed, k):
    """Distinct but reproducible seeds for each random layer."""
    return None if seed is None else seed + k
