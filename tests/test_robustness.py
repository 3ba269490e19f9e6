"""The shift suite: each shift does what its name says, the suite is seeded,
and `evaluate --shifts` scores a model under it (catdog.evaluation.robustness)."""

import json

import numpy as np
import pytest
from PIL import Image

import catdog
from catdog.evaluation.robustness import SUITE, apply_shift, evaluate_shifts, select
from catdog.evaluation.robustness import camera, imagenet_c
from catdog.evaluation.robustness.evaluation import probability_matrix, summary_lines
from conftest import assert_one_line_error, run_cli, tiny_model, write_photo_folder

SHIFT = {shift.name: shift for shift in SUITE}
SIZE = 32  # the "model side" the shifts are told about


def textured_photo(height=61, width=81, seed=0):
    """Smooth gradients plus fine texture, every pixel in 40..215: a photo stand-in
    with both low and high frequencies, and no clipping at either end."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([80 + 60 * x / width, 80 + 60 * y / height, 110 + 30 * np.sin(x / 7.0)], axis=-1)
    return np.clip(base + rng.uniform(-40, 40, (height, width, 3)), 0, 255).astype(np.uint8)


def gradient_photo(height=61, width=81):
    """R = column index, G = row index: where a pixel came from is readable."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 3, y * 4, np.full_like(x, 128)], axis=-1).astype(np.uint8)


def high_frequency_energy(image, cutoff=0.125):
    """Power of the grey levels' spectrum above `cutoff` cycles per pixel
    (0.125: a quarter of the highest frequency a pixel grid holds)."""
    grey = image.astype(np.float64).mean(axis=-1)
    power = np.abs(np.fft.fft2(grey - grey.mean())) ** 2
    fy = np.abs(np.fft.fftfreq(grey.shape[0]))[:, None]
    fx = np.abs(np.fft.fftfreq(grey.shape[1]))[None, :]
    return power[np.maximum(fy, fx) > cutoff].sum()


def shifted(name, photo, seed=0, index=0):
    out = apply_shift(SHIFT[name], photo, SIZE, seed=seed, index=index)
    assert out.shape == photo.shape and out.dtype == np.uint8
    return out


# --- each shift -------------------------------------------------------------


def test_the_suite_has_every_kind_of_shift_the_issue_names():
    families = {shift.family for shift in SUITE}
    assert families == {
        "gaussian_noise", "defocus_blur", "jpeg", "brightness", "contrast", "greyscale",
        "rotation", "off_centre_crop", "zoom", "low_resolution", "mirror",
    }
    for family in ("gaussian_noise", "defocus_blur", "jpeg", "brightness", "contrast"):
        assert [s.name for s in SUITE if s.family == family] == [f"{family}-s2", f"{family}-s4"]
    assert len({shift.name for shift in SUITE}) == len(SUITE) == 20


def test_mirror_is_the_flipped_array_and_greyscale_has_equal_channels():
    photo = textured_photo()
    np.testing.assert_array_equal(shifted("mirror", photo), photo[:, ::-1])
    grey = shifted("greyscale", photo)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    luma = photo.astype(np.float64) @ [0.299, 0.587, 0.114]
    assert np.abs(grey[..., 0] - luma).max() <= 1.0


def test_gaussian_noise_has_imagenet_c_std_and_no_bias():
    grey = np.full((200, 200, 3), 128, np.uint8)
    for name, std in (("gaussian_noise-s2", 0.12), ("gaussian_noise-s4", 0.26)):
        difference = shifted(name, grey).astype(np.float64) - 128
        assert abs(difference.mean()) < 1.0
        # s4 clips a little at 0 and 255 (128 is 1.9 std from either end).
        assert difference.std() == pytest.approx(std * 255, rel=0.03 if name.endswith("2") else 0.08)


def test_jpeg_changes_the_bytes_keeps_the_size_and_costs_more_at_higher_severity():
    photo = textured_photo()
    errors = []
    for name in ("jpeg-s2", "jpeg-s4"):
        out = shifted(name, photo)
        assert not np.array_equal(out, photo)
        errors.append(np.abs(out.astype(float) - photo).mean())
    assert 1.0 < errors[0] < errors[1] < 40.0


def test_brightness_raises_value_and_keeps_hue():
    photo = textured_photo()
    means = [shifted(name, photo).astype(float).mean() for name in ("brightness-s2", "brightness-s4")]
    assert photo.mean() < means[0] < means[1]
    out = shifted("brightness-s2", photo).astype(float)
    value = photo.max(axis=-1).astype(float)
    # Unsaturated pixels: every channel scales by the same factor (V + 0.2) / V.
    unsaturated = value + 0.2 * 255 < 250
    ratio = (value + 0.2 * 255) / value
    expected = photo.astype(float) * ratio[..., None]
    assert np.abs(out - expected)[unsaturated].max() <= 1.0
    black = shifted("brightness-s4", np.zeros((4, 4, 3), np.uint8))
    assert (black == round(0.4 * 255)).all()


def test_contrast_keeps_channel_means_and_lowers_std_by_the_imagenet_c_factor():
    photo = textured_photo()
    for name, factor in (("contrast-s2", 0.3), ("contrast-s4", 0.1)):
        out = shifted(name, photo).astype(float)
        np.testing.assert_allclose(out.mean(axis=(0, 1)), photo.mean(axis=(0, 1)), atol=0.6)
        np.testing.assert_allclose(out.std(axis=(0, 1)), factor * photo.std(axis=(0, 1)), rtol=0.05, atol=0.3)


def test_defocus_blur_keeps_the_mean_and_removes_fine_detail():
    photo = textured_photo()
    before = high_frequency_energy(photo)
    after = [high_frequency_energy(shifted(name, photo)) for name in ("defocus_blur-s2", "defocus_blur-s4")]
    assert after[1] < after[0] < before / 50
    out = shifted("defocus_blur-s2", photo).astype(float)
    assert out.mean() == pytest.approx(photo.mean(), abs=1.0)
    flat = np.full((40, 50, 3), 77, np.uint8)
    np.testing.assert_array_equal(shifted("defocus_blur-s4", flat), flat)


def test_defocus_disk_is_imagenet_c_at_scale_one_and_stretches_with_the_photo():
    kernel = imagenet_c.disk(3, 0.1)
    assert kernel.shape == (17, 17) and kernel.sum() == pytest.approx(1.0)
    # ImageNet-C: the 29 grid points within radius 3, equal weights (alias blur 0.1 ~ none).
    assert (kernel > 1e-3).sum() == 29
    np.testing.assert_allclose(kernel, kernel[::-1, ::-1])
    tall = imagenet_c.disk(4, 0.5, scale=(2.0, 1.0))
    rows, columns = np.nonzero(tall > 1e-3)
    assert np.ptp(rows) == pytest.approx(2 * np.ptp(columns), abs=2)


def test_low_resolution_loses_high_frequencies_and_keeps_the_picture():
    photo = textured_photo(121, 161)
    half, quarter = (shifted(name, photo) for name in ("low_resolution-half", "low_resolution-quarter"))
    # SIZE 32: the photo passes through 16x16 and 8x8 pixels.
    fine = high_frequency_energy(photo)
    assert high_frequency_energy(half) < fine / 50 and high_frequency_energy(quarter) < fine / 50
    # Detail of 3-8 cycles across the photo survives 16x16 pixels, not 8x8.
    assert high_frequency_energy(quarter, 0.02) < high_frequency_energy(half, 0.02) / 2
    assert np.abs(half.astype(float).mean(axis=(0, 1)) - photo.mean(axis=(0, 1))).max() < 3


def test_rotation_keeps_the_centre_pixel_fills_the_corners_and_is_seeded_either_way():
    photo = gradient_photo()
    centre = photo[30, 40].astype(int)
    turns = {}
    for index in range(8):
        out = shifted("rotation-10deg", photo, index=index)
        assert np.abs(out[30, 40].astype(int) - centre).max() <= 2
        assert not np.array_equal(out, photo)
        assert out[..., 2].min() >= 127  # no empty (black) corner
        # The top-left corner comes from the left half going up or down: the turn's sign.
        turns[index] = "clockwise" if out[0, 0, 1] > out[0, -1, 1] else "anticlockwise"
    assert set(turns.values()) == {"clockwise", "anticlockwise"}
    # 20 degrees needs more zoom to fill the frame than 10.
    spread = [np.ptp(shifted(name, photo)[30, :, 0].astype(int)) for name in ("rotation-10deg", "rotation-20deg")]
    assert spread[0] > spread[1]


def test_zoom_keeps_the_size_and_centre_and_enlarges_the_middle():
    photo = gradient_photo()
    for name, factor in (("zoom-1.25x", 1.25), ("zoom-1.5x", 1.5)):
        out = shifted(name, photo).astype(int)
        assert np.abs(out[30, 40] - photo[30, 40]).max() <= 2
        # Column j now shows column 40.5 + (j + 0.5 - 40.5) / factor - 0.5: R (= 3 x column) says which.
        for j in (5, 70):
            source = 40.5 + (j + 0.5 - 40.5) / factor - 0.5
            assert out[30, j, 0] == pytest.approx(3 * source, abs=2)


def test_off_centre_crops_show_a_corner_enlarged():
    photo = gradient_photo()
    corners = set()
    for index in range(12):
        out = shifted("crop-60pct", photo, index=index).astype(int)
        assert out.shape == photo.shape and not np.array_equal(out, photo)
        left = out[:, :, 0].min() <= 3  # the crop touches column 0
        top = out[:, :, 1].min() <= 4  # ... row 0
        assert left or out[:, :, 0].max() >= 3 * 79  # else it touches the right edge
        assert top or out[:, :, 1].max() >= 4 * 59
        corners.add((top, left))
        # 60% of each side: the output spans 0.6 of the columns and rows.
        assert np.ptp(out[30, :, 0]) == pytest.approx(0.6 * 3 * 80, abs=8)
    assert corners == {(True, True), (True, False), (False, True), (False, False)}


def test_shifts_work_on_tiny_and_odd_photos():
    for photo in (np.full((1, 1, 3), 200, np.uint8), textured_photo(3, 200), textured_photo(250, 7)):
        for shift in SUITE:
            out = apply_shift(shift, photo, SIZE)
            assert out.shape == photo.shape and out.dtype == np.uint8, shift.name


# --- the suite as a whole -----------------------------------------------------


def test_the_suite_is_deterministic_for_a_seed_and_differs_with_it():
    photo = textured_photo()
    first = [apply_shift(s, photo, SIZE, seed=3, index=5) for s in SUITE]
    again = [apply_shift(s, photo, SIZE, seed=3, index=5) for s in SUITE]
    for shift, a, b in zip(SUITE, first, again):
        np.testing.assert_array_equal(a, b, err_msg=shift.name)
    other_seed = apply_shift(SHIFT["gaussian_noise-s2"], photo, SIZE, seed=4, index=5)
    other_photo = apply_shift(SHIFT["gaussian_noise-s2"], photo, SIZE, seed=3, index=6)
    assert not np.array_equal(first[0], other_seed) and not np.array_equal(first[0], other_photo)
    deterministic = {"jpeg-s2", "brightness-s2", "contrast-s2", "greyscale", "mirror", "zoom-1.5x"}
    for name in deterministic:  # no randomness: the seed changes nothing
        np.testing.assert_array_equal(
            apply_shift(SHIFT[name], photo, SIZE, seed=4), apply_shift(SHIFT[name], photo, SIZE, seed=3)
        )


def test_select_by_name_or_family_and_unknown_names_are_config_errors():
    assert [s.name for s in select(["mirror", "jpeg"])] == ["jpeg-s2", "jpeg-s4", "mirror"]
    assert select(None) == list(SUITE)
    with pytest.raises(catdog.ConfigError, match="unknown shift 'fog'"):
        select(["fog"])


# --- evaluating a model under the suite ----------------------------------------


class LeftBlueModel:
    """P(dog) = blueness of the left half: mirror images change its answer."""

    image_size = 32

    def predict_on_batch(self, images):
        images = np.asarray(images, np.float64)
        return (images[:, :, :16, 2].mean(axis=(1, 2)) / 255.0).reshape(-1, 1)


class ThreeClassModel:
    """Softmax over red, green, blue means: three classes, argmax decides."""

    image_size = 32
    class_names = ["red", "green", "blue"]

    def predict_on_batch(self, images):
        means = np.asarray(images, np.float64).mean(axis=(1, 2))
        exp = np.exp((means - means.max(axis=1, keepdims=True)) / 10)
        return exp / exp.sum(axis=1, keepdims=True)


def half_images(left, right):
    images = np.zeros((len(left), 32, 32, 3), np.uint8)
    for image, a, b in zip(images, left, right):
        image[:, :16, 2], image[:, 16:, 2] = round(a * 255), round(b * 255)
    return images


def test_mirror_shift_scores_the_flipped_images_and_clean_matches_evaluate():
    left, right = [0.9, 0.2, 0.1, 0.8], [0.1, 0.7, 0.8, 0.9]
    labels = [0, 0, 1, 1]
    result = evaluate_shifts(LeftBlueModel(), (half_images(left, right), labels), shifts=["mirror", "greyscale"], batch_size=3)
    plain = catdog.evaluate(LeftBlueModel(), (half_images(left, right), labels))
    np.testing.assert_allclose(result.clean[:, 1], plain.p_dog)
    assert result.clean_accuracy == plain.accuracy == 0.5
    np.testing.assert_allclose(result.shifted["mirror"][:, 1], np.round(np.array(right) * 255) / 255)
    summary = result.to_dict()
    # Mirrored, P(dog) is the right half's: cat 0.1 right, cat 0.7 wrong, dogs 0.8 and 0.9 right.
    assert summary["shifts"]["mirror"]["accuracy"] == 0.75
    assert summary["shifts"]["mirror"]["changed_predictions"] == 3
    assert summary["mean_accuracy"] == pytest.approx(np.mean([a["accuracy"] for a in summary["shifts"].values()]))
    assert summary["worst"]["shift"] in summary["shifts"]
    assert set(summary) >= {"suite", "seed", "clean_accuracy", "mean_accuracy", "mean_drop", "worst", "families", "shifts", "n_images"}
    assert json.loads(json.dumps(summary)) == summary
    assert summary_lines(result)[1].startswith("clean accuracy 0.5000; mean over 2 shifts")


def test_n_class_models_are_scored_by_argmax():
    images = np.zeros((3, 32, 32, 3), np.uint8)
    for image, channel in zip(images, (0, 1, 2)):
        image[..., channel] = 200
    result = evaluate_shifts(ThreeClassModel(), (images, [0, 1, 2]), shifts=["greyscale", "contrast-s4"])
    assert result.clean.shape == (3, 3) and result.clean_accuracy == 1.0
    assert result.class_names == ["red", "green", "blue"]
    # Greyscale makes all channels equal: argmax falls to the first class.
    assert result.shift_accuracies["greyscale"] == pytest.approx(1 / 3)
    np.testing.assert_allclose(probability_matrix(np.array([[0.25], [1.0]])), [[0.75, 0.25], [0.0, 1.0]])


def test_a_folder_is_decoded_as_evaluate_decodes_it_and_a_limit_samples_the_same_photos(tmp_path):
    folder = write_photo_folder(tmp_path / "photos", per_class=5, size=(45, 70))
    plain = catdog.evaluate(LeftBlueModel(), str(folder))
    full = evaluate_shifts(LeftBlueModel(), str(folder), shifts=["gaussian_noise-s4", "rotation"])
    np.testing.assert_array_equal(full.clean[:, 1], plain.p_dog)  # the same decode and resize
    assert full.to_dict()["n_images"] == 10 and full.source == str(folder)
    sample = evaluate_shifts(LeftBlueModel(), str(folder), shifts=["gaussian_noise-s4", "rotation"], limit=4)
    assert sample.labels.size == 4 and sample.to_dict()["n_available"] == 10
    kept = [int(np.flatnonzero(np.isclose(full.clean[:, 1], p))[0]) for p in sample.clean[:, 1]]
    for name in ("gaussian_noise-s4", "rotation-10deg", "rotation-20deg"):
        np.testing.assert_array_equal(sample.shifted[name], full.shifted[name][kept])


def test_files_and_report_show_the_suite(tmp_path):
    from catdog.evaluation.evaluate import write_evaluation
    from catdog.evaluation.report import render_report

    images = half_images([0.9, 0.2, 0.1, 0.8], [0.1, 0.7, 0.8, 0.9])
    result = catdog.evaluate(LeftBlueModel(), (images, [0, 0, 1, 1]))
    result.robustness = evaluate_shifts(LeftBlueModel(), (images, [0, 0, 1, 1]), shifts=["mirror", "zoom"])
    figures = write_evaluation(result, tmp_path)
    with Image.open(figures["robustness"]) as figure:
        assert figure.format == "PNG" and figure.width > 500 and figure.height > 200
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert list(written["robustness"]["shifts"]) == ["zoom-1.25x", "zoom-1.5x", "mirror"]
    page = render_report(result, figures)
    assert "Robustness to distribution shift" in page and 'data-figure="robustness"' in page
    assert "<th>zoom-1.5x</th>" in page and "<th>mean over shifts</th>" in page


def test_cli_evaluate_with_shifts_writes_json_metrics_and_figure(tmp_path, capsys):
    folder = write_photo_folder(tmp_path / "photos", per_class=3, size=(40, 56))
    model_path = tmp_path / "tiny.keras"
    tiny_model().save(model_path)
    out = tmp_path / "eval"
    code, stdout, stderr = run_cli(
        capsys, "evaluate", model_path, "--data", folder, "--shifts", "--json", "--out", out, "--shift-seed", "7"
    )
    assert code == 0, stderr
    report = json.loads(stdout)
    robustness = report["robustness"]
    assert list(robustness["shifts"]) == [s.name for s in SUITE]
    assert robustness["n_images"] == 6 and robustness["seed"] == 7
    assert robustness["clean_accuracy"] == report["accuracy"]
    assert 0.0 <= robustness["mean_accuracy"] <= 1.0
    assert json.loads((out / "metrics.json").read_text())["robustness"] == robustness
    assert (out / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(out / "robustness.png") as figure:
        figure.verify()
    assert "Robustness to distribution shift" in (out / "report.html").read_text()

    code, stdout, stderr = run_cli(capsys, "evaluate", model_path, "--data", folder, "--shift-only", "mirror,fog")
    assert_one_line_error(code, stderr, "unknown shift 'fog'")
