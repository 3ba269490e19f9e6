"""catdog.evaluate on folders, TFDS, datasets and arrays; its files and report."""

import json
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import catdog
from catdog.evaluation.evaluate import summary_lines, write_evaluation
from catdog.evaluation.files import FIGURE_FILES as EVALUATION_FIGURES
from catdog.evaluation.report import render_report
from conftest import write_photo_folder


class BlueModel:
    """Stands in for a classifier: P(dog) is the blueness of the image's left half.

    Known probabilities make the bookkeeping checkable to the last digit, and
    the left-half rule makes a mirrored image score differently.
    """

    image_size = 32

    def predict_on_batch(self, images):
        images = np.asarray(images, np.float64)
        left = images[:, :, : images.shape[2] // 2, :]
        return (left[..., 2].mean(axis=(1, 2)) / 255.0).reshape(-1, 1)


def blue_images(blueness_left, blueness_right=None):
    """32x32 images whose left/right halves have the given blue levels."""
    right = blueness_left if blueness_right is None else blueness_right
    images = np.zeros((len(blueness_left), 32, 32, 3), np.uint8)
    for image, left_level, right_level in zip(images, blueness_left, right):
        image[:, :16, 2] = round(left_level * 255)
        image[:, 16:, 2] = round(right_level * 255)
    return images


def test_arrays_give_metrics_and_the_most_confidently_wrong_images():
    levels = [0.1, 0.9, 0.6, 0.2, 0.8, 0.3]
    labels = [0, 0, 0, 1, 1, 1]  # wrong: cat 0.9, cat 0.6, dog 0.2, dog 0.3
    result = catdog.evaluate(BlueModel(), (blue_images(levels), labels), batch_size=4, n_wrong=3)
    p_dog = np.round(np.array(levels) * 255) / 255
    np.testing.assert_allclose(result.p_dog, p_dog)
    assert result.n_images == 6 and result.n_skipped == 0 and result.paths is None
    assert result.accuracy == pytest.approx(2 / 6)
    assert result.confusion_matrix.tolist() == [[1, 2], [2, 1]]
    wrong = result.confidently_wrong
    assert [(w.true_class, round(w.p_dog, 2)) for w in wrong] == [("cat", 0.9), ("dog", 0.2), ("dog", 0.3)]
    assert wrong[0].image.shape == (32, 32, 3) and wrong[0].image[0, 0, 2] == round(0.9 * 255)
    assert result.tta_effect() is None


def test_dataset_without_files_keeps_the_images_themselves():
    levels = [0.7, 0.1, 0.4]
    dataset = tf.data.Dataset.from_tensor_slices((blue_images(levels), [0, 1, 1]))  # unbatched
    result = catdog.evaluate(BlueModel(), dataset)
    assert result.source == "dataset" and result.n_images == 3
    assert [w.path for w in result.confidently_wrong] == [None, None, None]
    blue = [w.image[0, 0, 2] for w in result.confidently_wrong]
    assert blue == [round(level * 255) for level in (0.1, 0.7, 0.4)]


def test_test_time_augmentation_averages_the_mirror_image_and_reports_both():
    left, right = [0.9, 0.45, 0.2, 0.7], [0.3, 0.45, 0.9, 0.9]
    labels = [0, 0, 1, 1]
    data = (blue_images(left, right), labels)
    plain = catdog.evaluate(BlueModel(), data)
    result = catdog.evaluate(BlueModel(), data, tta=True)
    quantised = lambda values: np.round(np.array(values) * 255) / 255  # noqa: E731
    np.testing.assert_allclose(result.p_dog_plain, plain.p_dog)
    np.testing.assert_allclose(result.p_dog, (quantised(left) + quantised(right)) / 2)
    effect = result.tta_effect()
    assert effect["without"]["accuracy"] == plain.accuracy == 0.5
    # The dog at 0.2 | 0.9 becomes right (0.55); the cat at 0.9 | 0.3 stays wrong (0.6).
    assert effect["with"]["accuracy"] == result.accuracy == 0.75
    assert effect["changed_predictions"] == 1
    assert "flip" in effect["method"]
    assert result.to_dict()["tta"] == effect
    lines = summary_lines(result)
    assert lines[1] == f"accuracy 0.7500  ROC AUC {result.auc:.4f}  log loss {result.log_loss:.4f}"
    assert "accuracy 0.5000 -> 0.7500 (+0.2500)" in lines[-1] and "1 predictions changed" in lines[-1]


def test_folder_keeps_paths_and_reports_unreadable_files(tmp_path):
    root = write_photo_folder(tmp_path / "photos", per_class=3)  # reddish cats, bluish dogs
    blue_cat = root / "cats" / "blue_cat.png"
    Image.fromarray(np.full((40, 30, 3), (20, 20, 250), np.uint8)).save(blue_cat)
    (root / "dogs" / "broken.jpg").write_bytes(b"not an image")
    result = catdog.evaluate(BlueModel(), str(root))
    assert result.n_images == 7 and result.n_skipped == 1
    assert result.skipped[0].path.endswith("broken.jpg")
    assert len(result.paths) == 7 and result.labels.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert result.confidently_wrong[0].path == str(blue_cat)
    assert result.confidently_wrong[0].p_dog == pytest.approx(250 / 255, abs=0.01)
    assert result.accuracy == pytest.approx(6 / 7)
    written = result.to_dict()
    assert written["n_skipped"] == 1 and written["skipped"][0]["reason"]
    assert written["confidently_wrong"][0]["path"] == str(blue_cat)


def test_tfds_spec_loads_the_named_split(monkeypatch):
    import tensorflow_datasets as tfds

    asked = []

    def fake_load(name, split, **kwargs):
        asked.append((name, split))
        images = blue_images([0.2, 0.9])
        return tf.data.Dataset.from_tensor_slices((images, np.array([1, 1], np.int64)))

    monkeypatch.setattr(tfds, "load", fake_load)
    default = catdog.evaluate(BlueModel(), "tfds:cats_vs_dogs")
    catdog.evaluate(BlueModel(), "tfds:cats_vs_dogs:train[:10%]")
    assert asked == [("cats_vs_dogs", "train[80%:]"), ("cats_vs_dogs", "train[:10%]")]
    assert default.n_images == 2 and default.auc is None  # dogs only
    assert default.confidently_wrong[0].path is None
    assert default.confidently_wrong[0].image.shape == (32, 32, 3)
    with pytest.raises(catdog.ConfigError, match="only tfds:cats_vs_dogs"):
        catdog.evaluate(BlueModel(), "tfds:mnist")


def test_tfds_failure_is_a_data_error(monkeypatch):
    import tensorflow_datasets as tfds

    def unavailable(*args, **kwargs):
        raise OSError("no network\nmore lines")

    monkeypatch.setattr(tfds, "load", unavailable)
    with pytest.raises(catdog.DataError, match="not available .*offline"):
        catdog.evaluate(BlueModel(), "tfds:cats_vs_dogs:test")


def test_bad_data_is_a_data_error(tmp_path):
    with pytest.raises(catdog.DataError, match="not found"):
        catdog.evaluate(BlueModel(), str(tmp_path / "missing"))
    with pytest.raises(catdog.DataError, match="images"):
        catdog.evaluate(BlueModel(), (np.zeros((3, 8, 8)), [0, 1, 0]))


def test_files_and_report_hold_the_same_numbers(tmp_path):
    levels = [0.1, 0.9, 0.6, 0.2, 0.8, 0.3]
    result = catdog.evaluate(BlueModel(), (blue_images(levels), [0, 0, 0, 1, 1, 1]))
    figures = write_evaluation(result, tmp_path)
    assert set(figures) == set(EVALUATION_FIGURES)
    for path in figures.values():
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 150
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written == json.loads(json.dumps(result.to_dict()))
    assert written["accuracy"] == pytest.approx(2 / 6) and written["confusion_matrix"] == [[1, 2], [2, 1]]

    page = render_report(result, figures, title="test <report>")
    embedded = re.search(r'<script type="application/json" id="metrics">(.*?)</script>', page, re.S)
    assert json.loads(embedded.group(1)) == written
    for name in EVALUATION_FIGURES:
        assert re.search(rf'<img data-figure="{name}" [^>]*src="data:image/png;base64,[A-Za-z0-9+/=]{{100,}}"', page)
    assert len(re.findall(r'<img data-example [^>]*src="data:image/jpeg;base64,', page)) == 4
    assert f'data-metric="accuracy">{2 / 6:.4f}<' in page
    assert "test &lt;report&gt;" in page
    assert not re.search(r"(src|href)=\"(?!data:)", page)  # self-contained
