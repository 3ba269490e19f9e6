"""The one definition of "the decoded photo" that every entry point shares.

`catdog predict`, `catdog evaluate`, training (and its validation) and the
server decode a file the same way: this module says how, so that a user can
hand a photo to a loaded `.keras` model and get the P(dog) catdog prints.
"""

import io
import os

import tensorflow as tf

from catdog.data.decode import decode_tf, decode_tf_resized, resize_uint8
from catdog.data.screening import choose_decoder, choose_decoder_bytes, decode_pil_or_reason
from catdog.layers.preprocessing import as_size_pair
from catdog.errors import ConfigError, DataError
from catdog.names import escape


def load_image(path, image_size=None, resize=False):
    """The photo in `path` as catdog decodes it: RGB uint8, shape (height, width, 3).

    Use it to give a loaded `.keras` model exactly the pixels catdog's own
    commands give it: JPEGs are decoded with libjpeg's accurate IDCT (the same
    pixels as Pillow's `Image.open(path).convert("RGB")`); EXIF orientation is
    applied and transparency lies on white. With `image_size` (the model's
    input size), a JPEG at least twice that size in both directions is decoded
    at a reduced DCT scale (1/2, 1/4 or 1/8: far cheaper, other pixels than a
    full decode) exactly as catdog's pipelines do; so
    `model.predict(catdog.load_image(path, model.image_size)[None])` gives the
    P(dog) `catdog predict` gives, for a photo of any size.

    Args:
        path: The image file.
        image_size: The model's input size, to decode large JPEGs as the
            pipelines do. Defaults to `None`: a full decode.
        resize: Also resize the photo to `image_size` (bilinear, rounded to
            uint8): the pixels the pipelines feed the model, and what the
            exported models take. Defaults to `False`.

    Raises:
        DataError: the file is not a usable image (with the reason: not an
            image, truncated, over the pixel budget, ...).
        ConfigError: `resize=True` without an `image_size`.

    Example:

    >>> import numpy as np
    >>> from PIL import Image
    >>> import catdog
    >>> Image.fromarray(np.full((60, 80, 3), 200, "uint8")).save("photo.jpg")
    >>> image = catdog.load_image("photo.jpg")
    >>> image.shape, image.dtype.name, int(image[0, 0, 0])
    ((60, 80, 3), 'uint8', 200)
    >>> catdog.load_image("photo.jpg", image_size=32, resize=True).shape
    (32, 32, 3)
    >>> with open("notes.jpg", "w") as file:
    ...     _ = file.write("not a photo")
    >>> try:
    ...     catdog.load_image("notes.jpg")
    ... except catdog.DataError as error:
    ...     print(error)
    cannot use notes.jpg: ...
    """
    if resize and image_size is None:
        raise ConfigError("resize=True needs an image_size")
    path = os.fspath(path)
    route, reason = choose_decoder(path, image_size)
    image = None
    if route == "tf":
        try:
            image = decode_tf(tf.io.read_file(os.fsencode(path)), image_size).numpy()
        except tf.errors.OpError:  # what TensorFlow cannot decode, Pillow may
            image = None
    if image is None and route is not None:
        image, reason = decode_pil_or_reason(path, image_size)
    if image is None:
        raise DataError(f"cannot use {escape(path)}: {reason}")
    if resize:
        image = resize_uint8(image, image_size).numpy()
    return image


class UndecodableImage(ValueError):
    """Encoded bytes that are no usable image; the message says why."""


def decode_bytes(contents, image_size):
    """Encoded image bytes -> the model's input, `image_size` RGB uint8 (numpy).

    The route `catdog predict` takes for a file with these bytes (see
    `catdog.data.screening.choose_decoder`): TensorFlow for the plain files,
    Pillow for the rest and for what TensorFlow fails on, then `resize_uint8`.
    Raises `UndecodableImage` with the reason a file would be skipped for.
    """
    contents = bytes(contents)
    route, reason = choose_decoder_bytes(contents, image_size)
    if route is None:
        raise UndecodableImage(reason)
    if route == "tf":
        try:
            return _tf_decoder(image_size)(tf.constant(contents)).numpy()
        except tf.errors.OpError:
            pass  # predict drops it from TensorFlow's pipeline and asks Pillow
    array, reason = decode_pil_or_reason(io.BytesIO(contents), image_size)
    if array is None:
        raise UndecodableImage(reason)
    return resize_uint8(array, image_size).numpy()


_TF_DECODERS = {}


def _tf_decoder(image_size):
    """`decode_tf_resized` traced once per size: eager tf.cond costs more than decoding."""
    key = tuple(as_size_pair(image_size))
    if key not in _TF_DECODERS:
        _TF_DECODERS[key] = tf.function(
            lambda contents: decode_tf_resized(contents, image_size),
            input_signature=[tf.TensorSpec([], tf.string)],
        )
    return _TF_DECODERS[key]
