"""Classes from the data: folder names, N-class metrics, and a 37-class run end to end."""

import json
import pathlib

import numpy as np
import pytest
from PIL import Image

import catdog
from catdog.evaluation import metrics
from catdog.data.folders import class_folders_of, list_labelled_files
from conftest import run_cli, write_photo_folder


def test_class_names_are_sorted_folder_names_but_cats_and_dogs_keep_their_labels():
    labels, names = class_folders_of(["siamese", "beagle", "abyssinian"])
    assert names == ("abyssinian", "beagle", "siamese")
    assert labels == {"abyssinian": 0, "beagle": 1, "siamese": 2}
    labels, names = class_folders_of(["dogs", "cats", "horses"])
    assert names == ("cat", "dog") and labels == {"cats": 0, "dogs": 1}
    # a model's classes: folders named like them (cats/ for "cat" too), others ignored
    labels, names = class_folders_of(["Beagle", "extra", "cats"], class_names=("beagle", "cat"))
    assert labels == {"Beagle": 0, "cats": 1}


def test_a_folder_with_one_class_folder_is_a_data_error(tmp_path):
    (tmp_path / "birds").mkdir()
    with pytest.raises(catdog.DataError, match="one class"):
        list_labelled_files(str(tmp_path))


def test_multiclass_metrics_match_scikit_learn_and_say_null_when_undefined():
    from sklearn import metrics as sk

    labels = np.array([0, 0, 1, 1, 2, 2, 0])
    p = np.array(
        [[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.1, 0.8, 0.1], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6], [0.1, 0.5, 0.4], [0.9, 0.05, 0.05]]
    )
    names = ["a", "b", "c"]
    result = metrics.multiclass_metrics(labels, p, names)
    predicted = p.argmax(1)
    assert result["accuracy"] == pytest.approx(sk.accuracy_score(labels, predicted))
    assert result["confusion_matrix"] == sk.confusion_matrix(labels, predicted).tolist()
    assert result["macro_f1"] == pytest.approx(sk.f1_score(labels, predicted, average="macro"))
    assert result["auc"] == pytest.approx(sk.roc_auc_score(labels, p, multi_class="ovr"))
    assert result["top_k_accuracy"] == {"1": pytest.approx(4 / 7)}
    assert result["per_class"]["b"]["precision"] == pytest.approx(1 / 3)
    assert result["log_loss"] == pytest.approx(sk.log_loss(labels, p))
    assert result["threshold"] is None
    # class c never true and never predicted: its scores and AUC do not exist
    absent = metrics.multiclass_metrics(np.array([0, 1, 1]), p[:3], names)
    assert absent["per_class"]["c"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    assert absent["auc_per_class"]["c"] is None
    assert absent["macro_f1"] == 1.0  # a and b are right; c's F1 does not exist and is left out
    json.dumps(absent, allow_nan=False)


def test_binary_results_keep_their_keys_and_gain_the_shared_ones():
    result = metrics.classification_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    for key in ("accuracy", "auc", "log_loss", "loss", "threshold", "confusion_matrix", "per_class", "n_images"):
        assert key in result
    assert result["class_names"] == ["cat", "dog"]
    assert result["auc_per_class"] == {"cat": pytest.approx(0.75), "dog": pytest.approx(0.75)}
    assert result["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)


def write_class_folders(root, n_classes=37, per_class=3, size=(40, 36)):
    """`n_classes` folders of tiny JPEGs whose hue says the class."""
    rng = np.random.default_rng(0)
    root = pathlib.Path(root)
    names = [f"breed_{i:02d}" for i in range(n_classes)]
    for i, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True)
        colour = np.array([(37 * i) % 256, (91 * i) % 256, (53 * i + 80) % 256], np.float32)
        for j in range(per_class):
            pixels = np.clip(colour + rng.normal(0, 20, (*size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{name}_{j}.jpg", quality=90)
    return root, names


@pytest.fixture(scope="module")
def run_37(tmp_path_factory):
    root, names = write_class_folders(tmp_path_factory.mktemp("breeds"))
    out = tmp_path_factory.mktemp("run") / "run"
    result = catdog.train(
        catdog.TrainConfig(
            data=str(root), out=str(out), image_size=32, alpha=0.35, weights=None,
            epochs=1, fine_tune_epochs=1, batch_size=16, verbose=0,
        )
    )
    return root, names, result


@pytest.mark.slow  # a benchmark script or a long run: `make test-slow`
def test_37_class_folder_trains_with_its_class_names_saved(run_37):
    _, names, result = run_37
    model = catdog.load_model(str(pathlib.Path(result.run_dir) / "model.keras"))
    assert type(model) is catdog.ImageClassifier and model.class_names == names
    assert [r["stage"] for r in result.history] == [1, 2]
    data = json.loads((pathlib.Path(result.run_dir) / "data.json").read_text())
    assert data["class_names"] == names and data["counts"]["train_per_class"][names[5]] == 2
    saved = json.loads((pathlib.Path(result.run_dir) / "metrics.json").read_text())
    assert len(saved["confusion_matrix"]) == 37 and set(saved["top_k_accuracy"]) == {"1", "3", "5"}


@pytest.mark.slow  # a benchmark script or a long run: `make test-slow`
def test_37_class_model_predicts_and_evaluates_from_the_command_line(run_37, capsys, tmp_path):
    root, names, result = run_37
    model_file = pathlib.Path(result.run_dir) / "model.keras"
    photo = root / names[3] / f"{names[3]}_0.jpg"
    code, out, err = run_cli(capsys, "predict", model_file, photo)
    assert code == 0, err
    path, label, probability = out.strip().split("\t")
    assert path == str(photo) and label in names and 0 < float(probability) <= 1
    code, out, err = run_cli(capsys, "predict", model_file, photo, "--json")
    row = json.loads(out)
    assert set(row["probabilities"]) == set(names) and sum(row["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    assert row["label"] == label and row["probability"] == pytest.approx(max(row["probabilities"].values()))

    code, out, err = run_cli(capsys, "evaluate", model_file, "--data", root, "--out", tmp_path / "eval")
    assert code == 0, err
    assert "37 classes, the most probable wins" in out and "top-5 accuracy" in out
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert report["n_images"] == 37 * 3 and report["n_skipped"] == 0
    assert list(report["per_class"]) == names and len(report["confusion_matrix"]) == 37
    assert sum(map(sum, report["confusion_matrix"])) == 111
    assert report["threshold"] is None and set(report["top_k_accuracy"]) == {"1", "3", "5"}
    assert 0 <= report["macro_f1"] <= 1 and set(report["auc_per_class"]) == set(names)
    html = (tmp_path / "eval" / "report.html").read_text()
    assert names[36] in html and "macro-F1" in html
    for figure in ("confusion_matrix.png", "roc_curve.png", "confidently_wrong.png"):
        with Image.open(tmp_path / "eval" / figure) as image:
            assert image.size[0] >= 600  # a 37x37 matrix gets room
    heat_map = catdog.explain(catdog.load_model(str(model_file)), str(photo))
    assert heat_map.shape == (40, 36)  # the photo's height and width and 0 <= heat_map.min() <= heat_map.max() <= 1


def test_cats_and_dogs_folder_still_gives_a_catdog_classifier(tmp_path):
    root = write_photo_folder(tmp_path / "photos", per_class=3)
    (root / "horses").mkdir()
    files = list_labelled_files(str(root))
    assert files.class_names == ("cat", "dog") and files.ignored_folders == [str(root / "horses")]


def test_unknown_backbone_is_a_one_line_usage_error(capsys, tmp_path):
    from conftest import assert_one_line_error

    code, _, err = run_cli(capsys, "train", "--data", tmp_path, "--backbone", "VGG99", "--out", tmp_path / "run")
    assert_one_line_error(code, err, "unknown backbone 'VGG99'", "EfficientNetB0")
    assert catdog.TrainConfig(backbone="efficientnet_b0").backbone == "EfficientNetB0"
