"""Photo augmentation built from Keras core's random image layers."""

import keras
from keras import ops

#: Defaults that keep a cat a cat: mirror images are still photos, but the
#: world is rarely upside down and animals fill most of the frame.
DEFAULT_FLIP = "horizontal"
DEFAULT_ROTATION = 0.1
DEFAULT_ZOOM = 0.1


@keras.saving.register_keras_serializable(package="catdog")
class ImageAugmentation(keras.layers.Layer):
    """Random flip, rotation and zoom, applied only when `training=True`.

    A layer rather than a `tf.data` map so it saves with the model and runs on
    any backend; at inference it is the identity, so the saved model predicts
    on raw images unchanged.

    Keras core's `RandomFlip`, `RandomRotation` and `RandomZoom` draw the
    transforms (their distributions and seeds), but the three are applied as
    one affine warp instead of three passes over the pixels: a fraction of the
    cost (`make levers` measures it), and the photo is resampled once instead
    of twice.

    Args:
        flip: `"horizontal"`, `"vertical"`, `"horizontal_and_vertical"`, or
            `None` for no flipping. Defaults to `"horizontal"` (the world is
            rarely upside down).
        rotation: Fraction of a full turn (0.1 = up to +/-36 degrees); 0 = off.
            Defaults to `0.1`.
        zoom: Fraction to zoom in or out by (0.1 = +/-10%); 0 = off. Defaults
            to `0.1`.
        fill_mode: How pixels outside the rotated/zoomed image are filled (as
            in `keras.layers.RandomRotation`). Defaults to `"reflect"`.
        seed: Seed for the random transforms, for reproducible runs. Defaults
            to `None`.
        color_jitter: Strength `s` of Keras core's `RandomColorJitter` after
            the warp: brightness +/-s of the range, contrast x(1 +/- s),
            saturation factor 0.5 +/- s/2 (0.5 keeps it); 0 = off. Defaults to
            `0.0`.
        grayscale: Probability of Keras core's `RandomGrayscale`; 0 = off.
            Defaults to `0.0`. Both colour steps are off in this layer by
            default, since it cannot know the range of the pixels it gets;
            catdog's classifier, which does, turns them on
            (`augmentation=True`: jitter 0.2, greyscale 0.1).
        value_range: The range of the pixel values this layer receives, which
            the colour steps need (the geometric ones do not): `(-1, 1)` after
            `ImagePreprocessor(mode="tf")`, `(0, 255)` after `mode="none"`.
            Defaults to `(-1.0, 1.0)`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Example:

    >>> import numpy as np
    >>> import catdog
    >>> layer = catdog.ImageAugmentation(seed=0)
    >>> images = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    >>> bool(np.array_equal(layer(images), images))  # inference: unchanged
    True
    >>> augmented = np.asarray(layer(images, training=True))
    >>> augmented.shape, bool(np.allclose(augmented, images))
    ((4, 32, 32, 3), False)
    """

    def __init__(
        self,
        flip=DEFAULT_FLIP,
        rotation=DEFAULT_ROTATION,
        zoom=DEFAULT_ZOOM,
        fill_mode="reflect",
        seed=None,
        color_jitter=0.0,
        grayscale=0.0,
        value_range=(-1.0, 1.0),
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.flip = flip
        self.rotation = float(rotation)
        self.zoom = float(zoom)
        self.fill_mode = fill_mode
        self.seed = seed
        self.color_jitter = float(color_jitter)
        self.grayscale = float(grayscale)
        self.value_range = tuple(float(v) for v in value_range)
        if len(self.value_range) != 2 or not self.value_range[0] < self.value_range[1]:
            raise ValueError(f"value_range must be (low, high) with low < high, got {value_range!r}")
        self.steps = []
        # Per-pixel colour steps, applied after the warp, on pixels in
        # `value_range` (the preprocessor's output).
        self.colour_steps = []
        if self.color_jitter:
            strength = self.color_jitter
            self.colour_steps.append(
                keras.layers.RandomColorJitter(
                    value_range=self.value_range,
                    brightness_factor=strength,
                    contrast_factor=strength,
                    saturation_factor=(0.5 - strength / 2, 0.5 + strength / 2),
                    seed=_offset(seed, 3),
                )
            )
        if self.grayscale:
            self.colour_steps.append(keras.layers.RandomGrayscale(self.grayscale, seed=_offset(seed, 4)))
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
        # Keras marks RandomRotation and RandomZoom as not compilable because
        # TensorFlow's warp op has no XLA kernel. Here they only draw the
        # transforms (keras.ops random numbers) and the warp is ours, which
        # JAX compiles. Left as Keras has it, `jit_compile="auto"` turns jit
        # off for every JAX model holding this layer, and JAX then runs the
        # train step op by op.
        self.supports_jit = keras.backend.backend() != "tensorflow"
        for step in self.steps + self.colour_steps:
            step.supports_jit = self.supports_jit

    def build(self, input_shape):
        for step in self.steps + self.colour_steps:
            step.build(input_shape)
        self.built = True

    def call(self, images, training=None):
        if not training or not (self.steps or self.colour_steps):
            return images
        unbatched = len(images.shape) == 3
        if unbatched:
            images = ops.expand_dims(images, 0)
        images = ops.cast(images, self.compute_dtype)
        if self.steps:
            transform = self.random_transform(images)
            images = ops.image.affine_transform(
                images, transform, interpolation="bilinear", fill_mode=self.fill_mode
            )
        for step in self.colour_steps:
            images = step(images, training=True)
        return images[0] if unbatched else images

    def random_transform(self, images):
        """One (batch, 8) output->input transform: flip, then rotation, then zoom.

        Applying the steps one after the other samples the input at
        `F(R(Z(p)))` for an output pixel `p`, so the matrices multiply in the
        order the steps run.
        """
        shape = ops.shape(images)
        batch, height, width = shape[0], shape[1], shape[2]
        matrix = None
        for step in self.steps:
            drawn = _as_3x3(_step_matrix(step, images, batch, height, width))
            matrix = drawn if matrix is None else ops.matmul(matrix, drawn)
        return ops.reshape(matrix, (batch, 9))[:, :8]

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
                "color_jitter": self.color_jitter,
                "grayscale": self.grayscale,
                "value_range": list(self.value_range),
            }
        )
        return config


def _step_matrix(step, images, batch, height, width):
    """The (batch, 8) output->input transform a Keras random layer draws."""
    drawn = step.get_random_transformation(images, training=True)
    if isinstance(step, keras.layers.RandomRotation):
        return ops.cast(drawn["rotation_matrix"], "float32")
    if isinstance(step, keras.layers.RandomZoom):
        zooms = ops.concatenate([drawn["width_zoom"], drawn["height_zoom"]], axis=1)
        return step._get_zoom_matrix(ops.cast(zooms, "float32"), height, width)
    # RandomFlip: the same draw flips every axis its mode names.
    flips = ops.cast(ops.reshape(drawn["flips"], (batch,)), "float32")
    sign_x = 1.0 - 2.0 * flips if step.mode in ("horizontal", "horizontal_and_vertical") else ops.ones((batch,))
    sign_y = 1.0 - 2.0 * flips if step.mode in ("vertical", "horizontal_and_vertical") else ops.ones((batch,))
    last_x = ops.cast(width, "float32") - 1.0
    last_y = ops.cast(height, "float32") - 1.0
    zero = ops.zeros((batch,))
    return ops.stack(
        [sign_x, zero, (1.0 - sign_x) / 2.0 * last_x, zero, sign_y, (1.0 - sign_y) / 2.0 * last_y, zero, zero],
        axis=1,
    )


def _as_3x3(transform):
    batch = ops.shape(transform)[0]
    return ops.reshape(ops.concatenate([transform, ops.ones((batch, 1))], axis=1), (batch, 3, 3))


def _offset(seed, k):
    """Distinct but reproducible seeds for each random layer."""
    return None if seed is None else seed + k
