"""Shifts a camera or a photo's later life makes: framing, colour, resolution.

Every function takes an RGB uint8 photo and returns one of the same shape:
the model's resize comes after, as it does for every photo. Geometric shifts
resample once, bilinearly, with Pillow.
"""

import math

import numpy as np
from PIL import Image


def mirror(image):
    """The mirror image (left-right flip)."""
    return np.ascontiguousarray(image[:, ::-1])


def greyscale(image):
    """ITU-R 601 luma (Pillow's "L"), in all three channels."""
    luma = np.asarray(Image.fromarray(image).convert("L"))
    return np.repeat(luma[..., None], 3, axis=-1)


def rotation(image, degrees):
    """Turned by `degrees` about the centre, and zoomed just enough that no
    corner is empty: a tilted camera, not a pasted picture."""
    height, width = image.shape[:2]
    theta = math.radians(degrees)
    cover = abs(math.cos(theta)) + max(height / width, width / height) * abs(math.sin(theta))
    return _affine(image, theta, cover, (width / 2.0, height / 2.0))


def zoom(image, factor):
    """The centre 1/`factor` of each side, enlarged to the full frame."""
    height, width = image.shape[:2]
    return _affine(image, 0.0, factor, (width / 2.0, height / 2.0))


def off_centre_crop(image, keep, corner):
    """The part of the photo `keep` of each side wide, in one corner
    (0: top left, 1: top right, 2: bottom left, 3: bottom right), enlarged
    to the full frame: the subject is no longer in the middle."""
    height, width = image.shape[:2]
    crop_w, crop_h = width * keep, height * keep
    left = 0.0 if corner in (0, 2) else width - crop_w
    top = 0.0 if corner in (0, 1) else height - crop_h
    centre = (left + crop_w / 2.0, top + crop_h / 2.0)
    return _affine(image, 0.0, 1.0 / keep, centre)


def low_resolution(image, side):
    """Shrunk to `side` x `side` pixels (area average), scaled back up
    bilinearly: a thumbnail blown up. `side` is in the model's pixels, so
    the model sees that much detail whatever the photo's size."""
    height, width = image.shape[:2]
    small = Image.fromarray(image).resize((side, side), Image.Resampling.BOX)
    return np.asarray(small.resize((width, height), Image.Resampling.BILINEAR), dtype=np.uint8)


def _affine(image, theta, magnification, centre):
    """Rotate by `theta` and magnify about `centre`, which lands in the middle."""
    height, width = image.shape[:2]
    cos, sin = math.cos(theta) / magnification, math.sin(theta) / magnification
    cx, cy = centre
    ox, oy = width / 2.0, height / 2.0
    # Pillow maps each output point (x, y) to the input point (a x + b y + c, d x + e y + f).
    data = (cos, sin, cx - cos * ox - sin * oy, -sin, cos, cy + sin * ox - cos * oy)
    picture = Image.fromarray(image).transform(
        (width, height), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR
    )
    return np.asarray(picture, dtype=np.uint8)
