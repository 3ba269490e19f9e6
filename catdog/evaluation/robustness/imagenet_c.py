"""Five ImageNet-C corruptions, written out with numpy and Pillow.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common
Corruptions and Perturbations" (ICLR 2019): the formulas and the severity
constants below are those of their `make_imagenet_c.py`. The PyPI packages
that wrap that file were checked and not used (see README, "Robustness"):
`imagecorruptions` 1.1.2 fails on current scikit-image (`gaussian(...,
multichannel=True)`), and the forks that work pull in OpenCV and
scikit-image (about 480 MB) for these few lines, and draw their noise from
NumPy's global random state.

ImageNet-C defines its constants on 224x224 images. Here a corruption acts
on the decoded photo, before the model's resize, so the spatial ones (the
defocus disk) are scaled per axis by `scale = (photo height / model side,
photo width / model side)`: after the resize the model sees the blur
ImageNet-C meant. Pixel-wise ones (noise, JPEG, brightness, contrast) act on
the photo's own pixels, as a camera would.

Every function takes and returns an RGB uint8 array of the same shape.
"""

import io

import numpy as np
from PIL import Image

#: severity 1..5 -> the constant of `make_imagenet_c.py`
GAUSSIAN_NOISE = (0.08, 0.12, 0.18, 0.26, 0.38)  # std on [0, 1] pixels
DEFOCUS_BLUR = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))  # (disk radius, alias blur)
JPEG_QUALITY = (25, 18, 15, 10, 7)
BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)  # added to HSV value
CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)  # factor on the distance to the channel mean


def gaussian_noise(image, severity, rng):
    """Additive white noise, std `GAUSSIAN_NOISE[severity]` on [0, 1] pixels."""
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    noise *= np.float32(GAUSSIAN_NOISE[severity - 1] * 255.0)
    noise += image
    return to_uint8(noise)


def defocus_blur(image, severity, scale=(1.0, 1.0)):
    """Convolution with an anti-aliased disk: an out-of-focus lens."""
    radius, alias_blur = DEFOCUS_BLUR[severity - 1]
    return to_uint8(convolve(image.astype(np.float32), disk(radius, alias_blur, scale)))


def jpeg_compression(image, severity):
    """Saved and reopened as a JPEG of quality `JPEG_QUALITY[severity]`."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY[severity - 1])
    with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.uint8)


def brightness(image, severity):
    """HSV value raised by `BRIGHTNESS[severity]`, hue and saturation kept.

    Exactly ImageNet-C's rgb2hsv -> V + c -> hsv2rgb: with hue and saturation
    fixed each channel is proportional to V, so it scales by V'/V (black,
    where V = 0 and saturation is 0, becomes the grey V').
    """
    x = image.astype(np.float32)
    value = x.max(axis=-1, keepdims=True)
    raised = np.minimum(value + np.float32(BRIGHTNESS[severity - 1] * 255.0), np.float32(255.0))
    x *= raised / np.maximum(value, np.float32(1e-6))
    black = value[..., 0] == 0
    x[black] = raised[black]
    return to_uint8(x)


def contrast(image, severity):
    """Each channel pulled towards its mean by the factor `CONTRAST[severity]`."""
    x = image.astype(np.float32)
    means = x.mean(axis=(0, 1), keepdims=True, dtype=np.float64).astype(np.float32)
    x -= means
    x *= np.float32(CONTRAST[severity - 1])
    x += means
    return to_uint8(x)


def disk(radius, alias_blur, scale=(1.0, 1.0)):
    """ImageNet-C's defocus kernel, stretched by `scale` (rows, columns).

    At scale 1 this is `make_imagenet_c.disk`: the pixels within `radius` of
    the centre on a grid of at least 17x17, normalised, then smoothed by a
    3x3 (radius > 8: 5x5) Gaussian of sigma `alias_blur` with mirrored
    borders. One change: the result is normalised again. At radius 8 the disk
    touches the grid's edge, the mirrored border adds weight, and ImageNet-C's
    kernel sums to more than 1, brightening the photo a little; blur alone
    should not.
    """
    sy, sx = (float(s) for s in scale)
    reach = max(radius, 8)
    ys = np.arange(-int(np.ceil(reach * sy)), int(np.ceil(reach * sy)) + 1) / sy
    xs = np.arange(-int(np.ceil(reach * sx)), int(np.ceil(reach * sx)) + 1) / sx
    grid_y, grid_x = np.meshgrid(ys, xs, indexing="ij")
    kernel = (grid_x**2 + grid_y**2 <= radius**2).astype(np.float64)
    kernel /= kernel.sum()
    half = 1 if radius <= 8 else 2  # cv2.GaussianBlur's ksize 3 or 5
    kernel = _smooth(kernel, _gaussian_1d(alias_blur * sy, max(1, round(half * sy))), axis=0)
    kernel = _smooth(kernel, _gaussian_1d(alias_blur * sx, max(1, round(half * sx))), axis=1)
    return kernel / kernel.sum()


def _smooth(array, weights, axis):
    """Convolution with a short symmetric 1-D kernel along `axis`, mirrored borders."""
    half = len(weights) // 2
    padding = [(0, 0), (0, 0)]
    padding[axis] = (half, half)
    padded = np.pad(array, padding, mode="reflect" if half < array.shape[axis] else "symmetric")
    length = array.shape[axis]
    return sum(w * np.take(padded, np.arange(k, k + length), axis=axis) for k, w in enumerate(weights))


def _gaussian_1d(sigma, half):
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (offsets / max(sigma, 1e-6)) ** 2)
    return weights / weights.sum()


def convolve(image, kernel):
    """2-D convolution of each channel with a symmetric `kernel`, same size.

    Borders are mirrored without repeating the edge pixel, as OpenCV's
    default (BORDER_REFLECT_101) that ImageNet-C's `cv2.filter2D` uses; done
    with FFTs, so large kernels cost no more than small ones.
    """
    kh, kw = kernel.shape
    ph, pw = kh // 2, kw // 2
    height, width = image.shape[:2]
    mode = "reflect" if ph < height and pw < width else "symmetric"
    padded = np.pad(image, ((ph, ph), (pw, pw), (0, 0)), mode=mode)
    # Circular convolution over a fast size at least as large as the
    # padded image: the wrap-around only touches the padding.
    shape = (_fast_length(padded.shape[0]), _fast_length(padded.shape[1]))
    kernel_spectrum = np.fft.rfft2(kernel.astype(image.dtype), shape)[..., None]
    spectrum = np.fft.rfft2(padded, shape, axes=(0, 1))
    spectrum *= kernel_spectrum
    full = np.fft.irfft2(spectrum, shape, axes=(0, 1))
    return full[2 * ph:2 * ph + height, 2 * pw:2 * pw + width]


def _fast_length(n):
    """The smallest 2^a 3^b 5^c >= n: FFTs of such lengths are fastest."""
    best = 1 << (int(n) - 1).bit_length()
    power5 = 1
    while power5 < best:
        power3 = power5
        while power3 < best:
            length = power3
            while length < n:
                length *= 2
            best = min(best, length)
            power3 *= 3
        power5 *= 5
    return best


def to_uint8(x):
    """Float pixels on 0..255 -> uint8, rounded and clipped."""
    x = np.rint(x)
    return np.clip(x, 0, 255, out=x).astype(np.uint8)
