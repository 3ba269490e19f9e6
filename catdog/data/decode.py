"""Turning image files into RGB uint8 arrays of one size, fast and forgivingly.

Two decoders: TensorFlow's (in-graph, parallel, used for the common files)
and Pillow's (for what TensorFlow cannot do right: WebP, TIFF, CMYK JPEGs,
EXIF-rotated photos). `catdog.data.screening` decides which file takes which.
"""

import os

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps

from catdog.layers.preprocessing import as_size_pair

#: JPEG DCT scaling factors libjpeg supports; decoding at 1/2..1/8 size is far
#: cheaper than decoding in full and resizing.
_DCT_RATIOS = (8, 4, 2)
#: The pixel budget: an image that would decode to more pixels than this
#: (after DCT scaling, for JPEGs) is skipped from its header, before any
#: decoding. 25 megapixels is a 6000x4000 photo with room to spare; decoding
#: one that large took 223 MB (TensorFlow) to 422 MB (Pillow) at the peak,
#: so memory is bounded by that times the decoding workers.
MAX_PIXELS = 25_000_000
#: Threads decoding with Pillow at once (tf.data decodes on at most one
#: thread per core): decoding memory is at most this many images' worth.
DECODE_WORKERS = max(1, min(8, os.cpu_count() or 1))
#: libjpeg's accurate integer IDCT, the one Pillow uses: TensorFlow's default
#: (the fast one) differs from what every other program decodes by up to 4
#: levels, so a photo read with Pillow would get another P(dog).
_DCT_METHOD = "INTEGER_ACCURATE"


def dct_ratio(width, height, image_size):
    """The DCT scale (1, 2, 4 or 8) a JPEG of this size is decoded at for `image_size`.

    The largest ratio that still gives at least `image_size`: the rule of
    `decode_jpeg_scaled` and of Pillow's `draft`.
    """
    if image_size is None:
        return 1
    target_height, target_width = as_size_pair(image_size)
    fits = min(height // target_height, width // target_width)
    return next((ratio for ratio in _DCT_RATIOS if fits >= ratio), 1)


def decoded_pixels(width, height, image_format, image_size):
    """How many pixels decoding this image costs (JPEGs: at their DCT scale)."""
    ratio = dct_ratio(width, height, image_size) if image_format == "JPEG" else 1
    return -(-width // ratio) * -(-height // ratio)


def too_many_pixels(width, height, image_format, image_size):
    """The reason an image is over the pixel budget, or None."""
    pixels = decoded_pixels(width, height, image_format, image_size)
    if pixels <= MAX_PIXELS:
        return None
    return (
        f"too many pixels ({width}x{height}, {pixels / 1e6:.0f} megapixels to decode; "
        f"the budget is {MAX_PIXELS / 1e6:.0f})"
    )


def path_tensor(paths):
    """File paths as a tf.string tensor of the bytes the file system gave.

    A name that is not UTF-8 (`caf\\xe9.jpg`) is a `str` with surrogates in
    Python, which TensorFlow refuses to convert; its bytes it takes.
    """
    return tf.constant(np.asarray([os.fsencode(p) for p in paths], dtype=bytes))


def resize_uint8(image, image_size):
    """Bilinear resize to `image_size`, rounded back to uint8 pixels."""
    resized = tf.image.resize(image, as_size_pair(image_size), method="bilinear")
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def decode_jpeg_scaled(contents, image_size):
    """Decode a JPEG at the smallest DCT scale still at least `image_size`."""
    height, width = as_size_pair(image_size)
    shape = tf.image.extract_jpeg_shape(contents)
    fits = tf.minimum(shape[0] // height, shape[1] // width)
    branches = [
        (fits >= ratio, lambda r=ratio: tf.io.decode_jpeg(contents, channels=3, ratio=r, dct_method=_DCT_METHOD))
        for ratio in _DCT_RATIOS
    ]
    return tf.case(
        branches,
        default=lambda: tf.io.decode_jpeg(contents, channels=3, dct_method=_DCT_METHOD),
        exclusive=False,
    )


def decode_tf(contents, image_size=None):
    """In-graph decode of JPEG/PNG/GIF/BMP bytes to RGB uint8 (first GIF frame)."""
    if image_size is None:
        image = tf.cond(
            tf.io.is_jpeg(contents),
            lambda: tf.io.decode_jpeg(contents, channels=3, dct_method=_DCT_METHOD),
            lambda: tf.io.decode_image(contents, channels=3, expand_animations=False),
        )
    else:
        image = tf.cond(
            tf.io.is_jpeg(contents),
            lambda: decode_jpeg_scaled(contents, image_size),
            lambda: tf.io.decode_image(contents, channels=3, expand_animations=False),
        )
    image.set_shape([None, None, 3])
    return image


def decode_tf_resized(contents, image_size):
    """Graph op: encoded bytes -> `image_size` RGB uint8 by TensorFlow.

    The TensorFlow route of `catdog predict`, of `catdog.data.photos.decode_bytes` (catdog serve)
    and of the SavedModel signature that takes encoded images: one function,
    so the three give the same pixels.
    """
    return resize_uint8(decode_tf(contents, image_size), image_size)


def decode_pil(path, image_size=None):
    """Pillow decode to RGB uint8, honouring EXIF orientation; alpha on white.

    `path` may also be a binary file object (`io.BytesIO`). With `image_size`,
    JPEGs decode at a reduced DCT scale no smaller than it. An image over the
    pixel budget (`MAX_PIXELS`) is refused before decoding.
    """
    with Image.open(path) as image:
        problem = too_many_pixels(image.width, image.height, image.format, image_size)
        if problem:
            raise ValueError(problem)
        if image_size is not None and image.format == "JPEG":
            height, width = as_size_pair(image_size)
            image.draft("RGB", (width, height))  # DCT scaling, like decode_tf
        try:
            image = ImageOps.exif_transpose(image)
        except Exception:  # a broken EXIF block: the pixels as stored
            image.load()
        if image.mode in ("RGBA", "LA", "PA") or (
            image.mode == "P" and "transparency" in image.info
        ):
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, rgba)
        elif image.mode in ("I;16", "I;16B", "I;16L", "I"):
            array = np.asarray(image, dtype=np.float64)
            top = 65535.0 if array.max() > 255 else 255.0
            image = Image.fromarray((array * (255.0 / top)).round().astype(np.uint8))
        array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return array


def decode_file(path, image_size, use_pil):
    """Graph op: a file path -> RGB uint8 at the photo's own (DCT-scaled) size,
    by the chosen decoder; `load_image` without its final resize."""

    def with_pil():
        image = tf.numpy_function(
            lambda p: decode_pil(os.fsdecode(p), image_size), [path], tf.uint8
        )
        image.set_shape([None, None, 3])
        return image

    def with_tf():
        return decode_tf(tf.io.read_file(path), image_size)

    return tf.cond(use_pil, with_pil, with_tf)


def load_image(path, image_size, use_pil):
    """Graph op: a file path -> `image_size` RGB uint8, by the chosen decoder."""
    return resize_uint8(decode_file(path, image_size, use_pil), image_size)
