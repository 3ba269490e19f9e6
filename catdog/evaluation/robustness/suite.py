"""The fixed suite of distribution shifts, and how one is applied to a photo.

A shift acts on the decoded photo, as a camera, an editor or a web page would,
before the model's resize: the shifted photo then goes through exactly the
resize and preprocessing every photo goes through. Random choices (the noise,
the rotation's direction, the crop's corner) come from a generator keyed by
(seed, shift, photo index), so one photo's result depends on nothing else:
not on the batch size, the order, or which other shifts run.
"""

import zlib
from dataclasses import dataclass

import numpy as np

from catdog.errors import ConfigError
from catdog.evaluation.robustness import camera, imagenet_c

#: Version of the suite's definition; bump it when a shift changes, so that
#: numbers measured with different suites are not compared.
SUITE_VERSION = "catdog-shifts-1"
#: ImageNet-C severities the suite uses for each of its corruptions (of 1..5).
SEVERITIES = (2, 4)


@dataclass(frozen=True)
class Shift:
    """One shift: `apply(photo, rng, image_size)` -> a photo of the same shape."""

    name: str
    family: str
    description: str
    function: object

    def apply(self, photo, rng, image_size):
        photo = np.ascontiguousarray(photo, dtype=np.uint8)
        shifted = self.function(photo, rng, image_size)
        if shifted.shape != photo.shape or shifted.dtype != np.uint8:
            raise AssertionError(f"{self.name} returned {shifted.shape} {shifted.dtype} for {photo.shape}")
        return shifted


def _scale(photo, image_size):
    """Photo pixels per model pixel, per axis: how the model's resize shrinks it."""
    return (photo.shape[0] / image_size, photo.shape[1] / image_size)


def _imagenet_c(family, severity):
    functions = {
        "gaussian_noise": lambda p, rng, s: imagenet_c.gaussian_noise(p, severity, rng),
        "defocus_blur": lambda p, rng, s: imagenet_c.defocus_blur(p, severity, _scale(p, s)),
        "jpeg": lambda p, rng, s: imagenet_c.jpeg_compression(p, severity),
        "brightness": lambda p, rng, s: imagenet_c.brightness(p, severity),
        "contrast": lambda p, rng, s: imagenet_c.contrast(p, severity),
    }
    details = {
        "gaussian_noise": f"std {imagenet_c.GAUSSIAN_NOISE[severity - 1]:g} of the pixel range",
        "defocus_blur": f"disk radius {imagenet_c.DEFOCUS_BLUR[severity - 1][0]} model pixels",
        "jpeg": f"quality {imagenet_c.JPEG_QUALITY[severity - 1]}",
        "brightness": f"HSV value +{imagenet_c.BRIGHTNESS[severity - 1]:g}",
        "contrast": f"contrast x{imagenet_c.CONTRAST[severity - 1]:g}",
    }
    return Shift(
        f"{family}-s{severity}",
        family,
        f"ImageNet-C {family.replace('_', ' ')}, severity {severity}: {details[family]}",
        functions[family],
    )


def _rotation(degrees):
    def rotate(photo, rng, image_size):
        return camera.rotation(photo, degrees * rng.choice((-1.0, 1.0)))

    return Shift(f"rotation-{degrees}deg", "rotation", f"turned {degrees} degrees either way (seeded), corners filled by zooming in", rotate)


def _crop(percent):
    def crop(photo, rng, image_size):
        return camera.off_centre_crop(photo, percent / 100.0, int(rng.integers(4)))

    return Shift(f"crop-{percent}pct", "off_centre_crop", f"a corner (seeded) {percent}% of each side, enlarged", crop)


def _zoom(factor):
    return Shift(
        f"zoom-{factor:g}x", "zoom", f"the centre 1/{factor:g} of each side, enlarged",
        lambda photo, rng, image_size: camera.zoom(photo, factor),
    )


def _low_resolution(fraction, label):
    def shrink(photo, rng, image_size):
        return camera.low_resolution(photo, max(1, round(image_size * fraction)))

    return Shift(
        f"low_resolution-{label}", "low_resolution",
        f"{label} of the model's resolution, scaled back up (bilinear)", shrink,
    )


def default_suite():
    """The shifts `catdog evaluate --shifts` runs, in report order."""
    shifts = [
        _imagenet_c(family, severity)
        for family in ("gaussian_noise", "defocus_blur", "jpeg", "brightness", "contrast")
        for severity in SEVERITIES
    ]
    shifts += [
        Shift("greyscale", "greyscale", "ITU-R 601 luma in all three channels", lambda p, rng, s: camera.greyscale(p)),
        _rotation(10),
        _rotation(20),
        _crop(80),
        _crop(60),
        _zoom(1.25),
        _zoom(1.5),
        _low_resolution(1 / 2, "half"),
        _low_resolution(1 / 4, "quarter"),
        Shift("mirror", "mirror", "left-right mirror image", lambda p, rng, s: camera.mirror(p)),
    ]
    return shifts


SUITE = tuple(default_suite())


def select(names=None, suite=SUITE):
    """The shifts of `suite` named in `names` (shift or family names; None: all)."""
    if names is None:
        return list(suite)
    if isinstance(names, str):  # one name, not its letters
        names = [names]
    wanted = [n.strip() for n in names if n.strip()]
    if not wanted:
        raise ConfigError("no shift named: pass shift or family names, or None for the whole suite")
    known = {s.name for s in suite} | {s.family for s in suite}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise ConfigError(
            f"unknown shift {', '.join(map(repr, unknown))}; choose from "
            f"{', '.join(sorted({s.family for s in suite}))} or one of {', '.join(s.name for s in suite)}"
        )
    return [s for s in suite if s.name in wanted or s.family in wanted]


def photo_rng(seed, shift, index):
    """The random generator of one shift on one photo."""
    return np.random.default_rng([int(seed), zlib.crc32(shift.name.encode()), int(index)])


def apply_shift(shift, photo, image_size, seed=0, index=0):
    """`shift` applied to `photo` (the `index`-th photo of a data set)."""
    return shift.apply(photo, photo_rng(seed, shift, index), image_size)
