"""Messy photo folders: every file is decoded to RGB, or skipped with its reason."""

import os
import time

import numpy as np
import PIL.Image
import pytest
import tensorflow as tf
from PIL import Image

import catdog
from catdog.data.decode import decode_jpeg_scaled, decode_pil
from catdog.data.folders import list_labelled_files
from catdog.data.screening import choose_decoder, inspect_files
from catdog.data.pipeline import manifest_dataset
from catdog.data.sources import load_splits
from catdog.data.folders import image_files
from conftest import assert_one_line_error, run_cli
from messy import RED, can_read, halves, write_messy_folder


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    return write_messy_folder(tmp_path_factory.mktemp("messy") / "photos")


@pytest.fixture(scope="module")
def inspected(messy):
    root, _ = messy
    files = list_labelled_files(str(root))
    manifest = inspect_files(files.paths, files.labels, 32)
    images = np.concatenate([x.numpy() for x, _ in manifest_dataset(manifest, 32, batch_size=8)])
    return files, manifest, images


def relative(root, path):
    return os.path.relpath(path, root)


def test_every_entry_is_decoded_to_rgb_or_skipped_with_its_reason(messy, inspected):
    root, expect = messy
    files, manifest, images = inspected
    used = {relative(root, p): ("pil" if pil else "tf") for p, pil in zip(manifest.paths, manifest.use_pil)}
    skipped = {relative(root, s.path): s.reason for s in files.skipped + manifest.skipped}
    assert not set(used) & set(skipped)
    assert set(used) | set(skipped) == set(expect), "every entry is accounted for, once"
    for name, (verdict, detail) in expect.items():
        if verdict == "skip":
            assert name in skipped, f"{name} should be skipped"
            assert detail in skipped[name], (name, skipped[name])
        else:
            assert used.get(name) == verdict, (name, used.get(name), skipped.get(name))
    assert images.shape == (len(manifest), 32, 32, 3) and images.dtype == np.uint8


@pytest.mark.parametrize(
    "name",
    [
        "cats/transparent.png", "cats/palette.gif", "dogs/animated.gif", "cats/bitmap.bmp",
        "dogs/photo.webp", "dogs/deep-grey16.png", "dogs/deep-rgb16.png", "cats/grey.jpg",
        "cats/cmyk.jpg", "dogs/rotated.jpg", "dogs/dot.png", "cats/album/2019/nested.jpg",
        "cats/link-to-file.jpg", "dogs/link-to-folder/linked-dog.jpg",
    ],
)
def test_odd_formats_decode_to_the_right_pixels(messy, inspected, name):
    root, expect = messy
    _, manifest, images = inspected
    pixels = images[manifest.paths.index(str(root / name))]
    assert expect[name][1](pixels), f"{name}: mean colour {pixels.reshape(-1, 3).mean(0)}"


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "portrait.jpg"
    photo = halves(40, 20, RED, (20, 20, 230))  # stored landscape: red left, blue right
    exif = photo.getexif()
    exif[0x0112] = 6
    photo.save(path, exif=exif, quality=95)
    assert choose_decoder(str(path)) == ("pil", None)
    upright = decode_pil(str(path))
    assert upright.shape == (40, 20, 3)  # transposed: portrait
    assert upright[0, :, 0].mean() > 200 and upright[-1, :, 2].mean() > 200  # red on top


def test_files_are_sorted_the_same_with_one_worker_or_many(messy):
    root, _ = messy
    files = list_labelled_files(str(root))
    one = inspect_files(files.paths, files.labels, 32, workers=1)
    many = inspect_files(files.paths, files.labels, 32, workers=8)
    assert (one.paths, one.labels, one.use_pil) == (many.paths, many.labels, many.use_pil)
    assert [(s.path, s.reason) for s in one.skipped] == [(s.path, s.reason) for s in many.skipped]


def test_an_8000_pixel_jpeg_is_decoded_at_a_reduced_scale(tmp_path):
    path = tmp_path / "huge.jpg"
    Image.new("RGB", (8000, 8000), (40, 160, 90)).save(path, quality=60)  # uniform: ~1 MB
    started = time.perf_counter()
    manifest = inspect_files([str(path)], [1], 32)
    (images, _), = manifest_dataset(manifest, 32, batch_size=1).take(1)
    assert manifest.use_pil == [False] and not manifest.skipped
    assert np.abs(images.numpy()[0].reshape(-1, 3).mean(0) - (40, 160, 90)).max() < 4
    # libjpeg's DCT scaling: 1/8 of each side, 3 MB of pixels instead of 192 MB.
    assert tuple(decode_jpeg_scaled(tf.io.read_file(str(path)), 32).shape) == (1000, 1000, 3)
    assert decode_pil(str(path), 32).shape == (1000, 1000, 3)
    assert time.perf_counter() - started < 60


def test_permission_denied_is_a_skip_with_its_reason(tmp_path, monkeypatch):
    """Simulated: tests often run as root, which reads files whatever their mode."""
    locked = tmp_path / "locked.jpg"
    Image.new("RGB", (10, 10)).save(locked)
    real_open = PIL.Image.open

    def denying_open(path, *args, **kwargs):
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(PIL.Image, "open", denying_open)
    manifest = inspect_files([str(locked)], [0], 32)
    assert [s.reason for s in manifest.skipped] == ["unreadable: permission denied"]


def test_permission_denied_for_real(tmp_path):
    locked = tmp_path / "locked.jpg"
    Image.new("RGB", (10, 10)).save(locked)
    os.chmod(locked, 0)
    if can_read(locked):
        pytest.skip("this process reads mode-000 files (running as root); the simulated test covers it")
    manifest = inspect_files([str(locked)], [0], 32)
    assert [s.reason for s in manifest.skipped] == ["unreadable: permission denied"]


@pytest.mark.parametrize("batch_size", [1, 5])
def test_one_pass_decoding_gives_the_pixels_and_skips_of_the_checked_pipeline(messy, inspected, batch_size):
    """Predicting decodes each file once (catdog.data.oneshot), unchecked; it
    must end where the checked training pipeline ends: same pixels per file,
    same skips with the same reasons, each file once."""
    from catdog.data.oneshot import decode_once

    files, manifest, images = inspected
    skipped = []
    seen = {}
    for indices, batch in decode_once(files.paths, 32, batch_size, skipped):
        assert len(indices) == len(batch) <= batch_size and batch.dtype == np.uint8
        for index, pixels in zip(indices, batch):
            assert index not in seen, "each file once"
            seen[index] = pixels
    expected = {files.paths.index(path): pixels for path, pixels in zip(manifest.paths, images)}
    assert sorted(seen) == sorted(expected)
    for index, pixels in expected.items():
        np.testing.assert_array_equal(seen[index], pixels, err_msg=files.paths[index])
    assert [(s.path, s.reason) for s in skipped] == [(s.path, s.reason) for s in manifest.skipped]


def test_predict_walks_folders_and_reports_what_it_skips(messy):
    root, expect = messy
    files, skipped = image_files([str(root / "cats"), str(root / "nope.jpg"), str(root / "cats" / "pipe.jpg")])
    reasons = {relative(root, s.path): s.reason for s in skipped}
    assert reasons["nope.jpg"] == "no such file or folder"
    assert reasons["cats/pipe.jpg"] == "not a regular file"
    assert "hidden" in reasons["cats/.DS_Store"] and "broken symbolic link" in reasons["cats/dangling.jpg"]
    assert str(root / "cats" / "album" / "2019" / "nested.jpg") in files


def test_training_data_report_counts_and_lists_every_skip(messy):
    root, expect = messy
    splits = load_splits(str(root), image_size=32, batch_size=4)
    expected_skips = {name for name, (verdict, _) in expect.items() if verdict == "skip"}
    assert {relative(root, s.path) for s in splits.skipped} == expected_skips
    assert splits.counts["skipped"] == len(expected_skips) == splits.summary()["skipped"]
    assert splits.counts["train"] + splits.counts["validation"] == len(expect) - len(expected_skips)


def test_a_folder_with_nothing_usable_is_a_one_line_error(tmp_path, capsys):
    for name in ("cats", "dogs"):
        (tmp_path / "junk" / name).mkdir(parents=True)
        (tmp_path / "junk" / name / "a.jpg").write_text("not a photo")
        (tmp_path / "junk" / name / "b.jpg").write_bytes(b"")
    code, _, err = run_cli(capsys, "train", "--data", tmp_path / "junk", "--out", tmp_path / "run", "--weights", "none", "--image-size", 32)
    assert_one_line_error(code, err, "no usable images")
    code, _, err = run_cli(capsys, "evaluate", tmp_path / "missing.keras", "--data", tmp_path / "junk")
    assert_one_line_error(code, err, "not found")


def test_evaluation_reports_the_files_it_skipped(trained_model_file, messy, capsys):
    root, expect = messy
    code, out, err = run_cli(capsys, "evaluate", trained_model_file, "--data", root, "--json")
    assert code == 0, err
    n_skipped = sum(verdict == "skip" for verdict, _ in expect.values())
    assert f'"n_skipped": {n_skipped}' in out
    listed = [line for line in err.splitlines() if line.startswith("catdog: skipped ")]
    assert len(listed) == n_skipped
    assert any("truncated.jpg" in line and "runcated" in line for line in listed)
