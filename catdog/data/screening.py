"""Decide, before training, which files are usable images and how to decode them.

Checking every file up front (headers with Pillow, a full decode with
TensorFlow where it will be the decoder) means a corrupt file is a line in a
report instead of a crash in epoch 3, and the dataset's size is known.
"""

import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from catdog.data.decode import DECODE_WORKERS, decode_pil, decode_tf, path_tensor, too_many_pixels
from catdog.data.folders import SkippedFile
from catdog.errors import os_reason

#: Formats TensorFlow's own decoders read correctly in the common modes.
TF_FORMATS = {"JPEG", "PNG", "GIF", "BMP"}
_TF_MODES = {"RGB", "L", "P", "1"}
_EXIF_ORIENTATION = 0x0112


@dataclass
class ImageManifest:
    """Usable image files, their labels and decoders, and what was skipped."""

    paths: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    use_pil: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    #: None: cat and dog
    class_names: tuple | None = None

    def __len__(self):
        return len(self.paths)

    def counts(self):
        from catdog.data.folders import CLASS_NAMES

        return {name: self.labels.count(i) for i, name in enumerate(self.class_names or CLASS_NAMES)}

    def subset(self, indices):
        return ImageManifest(
            [self.paths[i] for i in indices],
            [self.labels[i] for i in indices],
            [self.use_pil[i] for i in indices],
            [],
            self.class_names,
        )


def choose_decoder(path, image_size=None):
    """("tf" | "pil", None) for a probably-usable file, else (None, reason).

    An image over the pixel budget (see `catdog.data.decode.MAX_PIXELS`;
    JPEGs count at the DCT scale they are decoded at for `image_size`) is
    skipped from its header, without decoding it.

    TensorFlow decodes the plain cases in the graph; Pillow takes what
    TensorFlow gets wrong or cannot do: transparency (TF drops alpha, so
    transparent pixels come out black or garbage; Pillow puts them on
    white), EXIF orientation (TF ignores it), CMYK and other modes, 16-bit
    greyscale, formats TF lacks (TIFF, older TF: WebP), animated GIFs (TF
    decodes every frame to keep the first) and truncated JPEGs.
    """
    try:
        if not os.path.isfile(path):
            return None, "not a regular file" if os.path.exists(path) else "no such file"
        if os.path.getsize(path) == 0:
            return None, "empty file"
    except OSError as error:
        return None, f"unreadable: {os_reason(error)}"
    return _choose_route(path, lambda: _has_jpeg_end(path), image_size)


def choose_decoder_bytes(contents, image_size=None):
    """`choose_decoder` for an encoded image in memory (catdog serve): same rules."""
    if not contents:
        return None, "empty file"
    return _choose_route(io.BytesIO(contents), lambda: b"\xff\xd9" in contents[-4096:], image_size)


def _choose_route(source, jpeg_complete, image_size=None):
    """The decoder for a file or file object, from its header (see `choose_decoder`)."""
    try:
        with Image.open(source) as image:
            image_format, mode = image.format, image.mode
            if image.width < 1 or image.height < 1:
                return None, "image has no pixels"
            too_many = too_many_pixels(image.width, image.height, image.format, image_size)
            if too_many:
                return None, too_many
            orientation = _orientation(image)
            transparent = "A" in mode or "transparency" in image.info
            animated = image_format == "GIF" and getattr(image, "is_animated", False)
    except UnidentifiedImageError:
        return None, "not an image (unknown format)"
    except Image.DecompressionBombError:
        return None, "image too large (decompression bomb guard)"
    except OSError as error:
        return None, f"unreadable: {os_reason(error)}"
    except Exception as error:  # a malformed header can raise almost anything
        return None, f"unreadable: {_short(error)}"
    if image_format == "JPEG" and not jpeg_complete():
        return "pil", None  # truncated: let Pillow say so, without TF's log noise
    if (
        image_format in TF_FORMATS
        and mode in _TF_MODES
        and orientation == 1
        and not transparent
        and not animated
    ):
        return "tf", None
    return "pil", None


def _orientation(image):
    """EXIF orientation (1 = as stored); a broken EXIF block counts as 1."""
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Exception:  # EXIF parsing is best effort; the pixels may be fine
        return 1


def _has_jpeg_end(path, tail=4096):
    """Whether a JPEG's end-of-image marker is near its end (not truncated)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - tail))
        return b"\xff\xd9" in handle.read()


def pil_problem(path, image_size=None):
    """None if Pillow decodes the whole file, else why not."""
    return decode_pil_or_reason(path, image_size)[1]


def decode_pil_or_reason(path, image_size=None):
    """(RGB uint8 array, None) from Pillow, or (None, why it cannot)."""
    try:
        return decode_pil(path, image_size), None
    except OSError as error:
        if isinstance(error, FileNotFoundError | PermissionError):
            return None, f"unreadable: {os_reason(error)}"
        return None, _short(error)
    except Exception as error:  # any decoder failure means: skip this file
        return None, _short(error)


def tf_decodable(paths, image_size):
    """Indices of `paths` that TensorFlow decodes in full, checked in parallel."""
    if not paths:
        return set()
    paths_in_graph = path_tensor(paths)

    def check(index):
        image = decode_tf(tf.io.read_file(tf.gather(paths_in_graph, index)), image_size)
        return index, tf.shape(image)

    dataset = (
        tf.data.Dataset.range(len(paths))
        .map(check, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        .ignore_errors()
    )
    return {int(index) for index, _ in dataset.as_numpy_iterator()}


def inspect_files(paths, labels, image_size=None, workers=DECODE_WORKERS):
    """Sort files into decodable-by-TF, decodable-by-Pillow, and skipped."""
    with ThreadPoolExecutor(workers) as pool:
        choices = list(pool.map(lambda path: choose_decoder(path, image_size), paths))
    tf_indices = [i for i, (route, _) in enumerate(choices) if route == "tf"]
    tf_ok = {tf_indices[j] for j in tf_decodable([paths[i] for i in tf_indices], image_size)}

    def verdict(index):
        route, reason = choices[index]
        if route is None:
            return None, reason
        if route == "tf" and index in tf_ok:
            return "tf", None
        problem = pil_problem(paths[index], image_size)
        return (None, problem) if problem else ("pil", None)

    with ThreadPoolExecutor(workers) as pool:
        verdicts = list(pool.map(verdict, range(len(paths))))
    manifest = ImageManifest()
    for path, label, (route, reason) in zip(paths, labels, verdicts):
        if route is None:
            manifest.skipped.append(SkippedFile(path, reason))
        else:
            manifest.paths.append(path)
            manifest.labels.append(label)
            manifest.use_pil.append(route == "pil")
    return manifest


def _short(error):
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:200]


def as_arrays(manifest):
    return (
        # bytes, as the file system gave them: see `catdog.data.decode.path_tensor`
        np.asarray([os.fsencode(p) for p in manifest.paths], dtype=bytes),
        np.asarray(manifest.labels, dtype=np.float32),
        np.asarray(manifest.use_pil, dtype=bool),
    )
