"""Property: whatever bytes a file holds, decoding and predicting never crash.

Each file is either decoded to a 32x32 RGB uint8 image (and predicted, with
P(dog) in [0, 1]) or skipped with a reason.
"""

import io
import os
import tempfile

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from PIL import Image

from catdog.data.screening import inspect_files
from catdog.data.pipeline import manifest_dataset
from catdog.serving.inference import predict_files
from conftest import tiny_model

FORMATS = ["JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF"]
MODES = ["RGB", "RGBA", "L", "LA", "P", "1", "CMYK", "I;16"]
#: Real headers in front of random bytes reach deeper into the decoders.
HEADERS = [b"", b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"RIFF\x00\x00\x00\x00WEBP", b"II*\x00"]
SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def encoded_images(draw):
    """A small image of a random mode, saved in a random format, maybe damaged."""
    height, width = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGBA")
    mode = draw(st.sampled_from(MODES))
    image = image.convert(mode) if mode != "I;16" else Image.fromarray(pixels[..., 0].astype(np.uint16) * 257)
    image_format = draw(st.sampled_from(FORMATS))
    options = {}
    if image_format == "JPEG" and draw(st.booleans()):
        exif = Image.Exif()
        exif[0x0112] = draw(st.integers(0, 9))  # orientations 1-8, and nonsense
        options["exif"] = exif.tobytes()
    buffer = io.BytesIO()
    try:
        image.save(buffer, image_format, **options)
    except (OSError, ValueError, KeyError, TypeError):  # this format cannot hold this mode
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, image_format, **options)
    data = buffer.getvalue()
    damage = draw(st.sampled_from(["none", "truncate", "flip"]))
    if damage == "truncate":
        data = data[: draw(st.integers(0, len(data)))]
    elif damage == "flip":
        data = bytearray(data)
        for position in draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=8)):
            data[position] ^= 0xFF
        data = bytes(data)
    return data


random_bytes = st.builds(lambda header, tail: header + tail, st.sampled_from(HEADERS), st.binary(max_size=600))
file_contents = st.lists(st.one_of(encoded_images(), random_bytes), min_size=1, max_size=4)


def write_files(folder, contents):
    paths = []
    for i, data in enumerate(contents):
        path = os.path.join(folder, f"file{i}.jpg")
        with open(path, "wb") as handle:
            handle.write(data)
        paths.append(path)
    return paths


@settings(SETTINGS, max_examples=30)
@given(contents=file_contents)
def test_decoding_never_crashes_and_gives_rgb_or_a_reason(contents):
    with tempfile.TemporaryDirectory() as folder:
        paths = write_files(folder, contents)
        manifest = inspect_files(paths, [i % 2 for i in range(len(paths))], 32)
        assert sorted(manifest.paths + [s.path for s in manifest.skipped]) == paths
        assert all(s.reason for s in manifest.skipped)
        batches = [(x.numpy(), y.numpy()) for x, y in manifest_dataset(manifest, 32, batch_size=3)]
    n = sum(len(x) for x, _ in batches)
    assert n == len(manifest)
    for x, _ in batches:
        assert x.dtype == np.uint8 and x.shape[1:] == (32, 32, 3)


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@settings(SETTINGS, max_examples=6)
@given(contents=file_contents)
def test_predicting_never_crashes_and_gives_a_probability_or_a_skip(model, contents):
    with tempfile.TemporaryDirectory() as folder:
        paths = write_files(folder, contents)
        predictions, skipped = predict_files(model, [folder], batch_size=2)
    assert sorted([p.path for p in predictions] + [s.path for s in skipped]) == paths
    for prediction in predictions:
        assert 0.0 <= prediction.p_dog <= 1.0 and prediction.label in ("cat", "dog")


# --- file names and folder layouts ----------------------------------------------------------

#: Any bytes a Linux file name may hold (no "/", no NUL), "." and ".." excepted.
name_bytes = st.binary(min_size=1, max_size=24).filter(
    lambda b: b"/" not in b and b"\x00" not in b and b not in (b".", b"..")
)
layout_entries = st.lists(
    st.tuples(
        st.sampled_from(["cats", "dogs", "cats/sub", "dogs/a/b", "Cat", "horses"]),
        name_bytes,
        st.sampled_from(["png", "jpeg", "junk", "empty"]),
    ),
    min_size=1,
    max_size=6,
    unique_by=lambda entry: (entry[0].lower(), entry[1]),
)


def write_layout(root, entries):
    """The files of a layout under `root`; returns their paths (as Python names them)."""
    written = []
    for folder in ("cats", "dogs"):  # the class folders exist, maybe empty
        os.makedirs(os.path.join(root, folder))
    for folder, name, kind in entries:
        directory = os.path.join(root, folder)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, os.fsdecode(name))
        if os.path.exists(path):  # "Cat" and "cats" differ; a name may repeat a folder's
            continue
        buffer = io.BytesIO()
        if kind in ("png", "jpeg"):
            Image.new("RGB", (9, 7), (200, 30, 30)).save(buffer, kind.upper())
        elif kind == "junk":
            buffer.write(b"not an image " + name)
        with open(path, "wb") as handle:
            handle.write(buffer.getvalue())
        written.append(path)
    return written


@settings(SETTINGS, max_examples=12)
@given(entries=layout_entries)
def test_any_file_name_is_used_or_skipped_with_a_reason_never_a_crash(model, entries):
    """Training's and evaluation's loading, and predict, on names of arbitrary bytes."""
    from catdog.data.folders import list_labelled_files
    from catdog.data.labelled import labelled_data
    from catdog.errors import DataError
    from catdog.names import escape

    with tempfile.TemporaryDirectory() as root:
        written = write_layout(root, entries)
        under_classes = [p for p in written if os.path.relpath(p, root).split(os.sep)[0].lower() in ("cat", "cats", "dog", "dogs")]
        files = list_labelled_files(root)
        manifest = inspect_files(files.paths, files.labels, 32)
        assert all(s.reason for s in manifest.skipped + files.skipped)
        assert_accounted(under_classes, manifest.paths + [s.path for s in manifest.skipped + files.skipped])
        images = [x.numpy() for x, _ in manifest_dataset(manifest, 32, batch_size=4)]
        assert sum(len(x) for x in images) == len(manifest)
        try:
            evaluation = labelled_data(root, 32, batch_size=4)
        except DataError as error:  # no usable image: a one-line error, not a crash
            assert not len(manifest) and "no usable images" in str(error)
        else:
            assert evaluation.paths == manifest.paths
        predictions, skipped = predict_files(model, [root], batch_size=3)
        seen = [p.path for p in predictions] + [s.path for s in skipped]
        assert_accounted(written, seen)
        for line in map(escape, seen):  # one line of valid text per name
            assert not set(line) & set("\t\n\r") and line.encode("utf-8")


def assert_accounted(files, entries):
    """Each file is one entry, or lies in a folder that is one (skipped whole)."""
    assert len(entries) == len(set(entries)), entries
    for path in files:
        assert path in entries or any(path.startswith(entry + os.sep) for entry in entries), path
