"""The recipe scripts run, end to end, on small local photo folders.

Each recipe is run through its own `main(argv)` (the code a user runs), with
random weights and small images so it takes seconds; what it leaves behind is
checked: a `.keras` file that loads after `import catdog` and predicts on raw
images, its figures, and its refusals (one line, non-zero exit, nothing of
the user's touched).
"""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import ROOT, write_photo_folder


def recipe(name):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", ROOT / "recipes" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def raw_photos(count, size=(61, 47)):
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (count, *size, 3)).astype("uint8")


@pytest.mark.slow  # a long run whose path the default suite also takes: `make test-slow` (keeps `make test` near 10 minutes)
def test_cats_vs_dogs_recipe_trains_saves_and_the_file_predicts_on_raw_photos(tmp_path):
    photos = write_photo_folder(tmp_path / "photos", per_class=8)
    out = tmp_path / "run"
    history = recipe("cats_vs_dogs").main(
        ["--data", str(photos), "--out", str(out), "--weights", "none", "--image-size", "32",
         "--epochs", "1", "--fine-tune-epochs", "1"]
    )
    assert len(history.epoch) == 2
    assert sorted(p.name for p in out.iterdir()) == [".catdog", "curves.png", "model.keras"]
    assert json.loads((out / ".catdog").read_text())["kind"] == "recipe"
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    model = keras.saving.load_model(out / "model.keras")
    probabilities = np.asarray(model.predict(raw_photos(3), verbose=0))
    assert probabilities.shape == (3, 1)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()


def test_cats_vs_dogs_recipe_refuses_a_folder_it_did_not_make_before_any_work(tmp_path):
    """A user's model.keras is never overwritten: one line on stderr, exit 1, file unchanged."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "model.keras").write_bytes(b"the user's own model")
    completed = subprocess.run(
        [sys.executable, str(ROOT / "recipes" / "cats_vs_dogs.py"), "--data", str(tmp_path / "nowhere"),
         "--out", str(mine), "--weights", "none"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert completed.returncode == 1, completed.stderr
    assert "Traceback" not in completed.stderr, completed.stderr
    last = completed.stderr.strip().splitlines()[-1]  # after TensorFlow's own start-up lines
    assert last.startswith("cats_vs_dogs: --out") and "not a folder catdog made" in last
    assert (mine / "model.keras").read_bytes() == b"the user's own model"
    assert sorted(p.name for p in mine.iterdir()) == ["model.keras"]


def test_cats_vs_dogs_recipe_says_in_one_line_when_the_data_is_missing(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        recipe("cats_vs_dogs").main(["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run"),
                                     "--weights", "none"])
    message = str(exit.value.code)
    assert message.startswith("cats_vs_dogs: ") and "nowhere" in message and "\n" not in message


@pytest.mark.parametrize("argument", ["--epochs", "--fine-tune-epochs", "--image-size"])
def test_cats_vs_dogs_recipe_refuses_a_count_below_one(tmp_path, capsys, argument):
    with pytest.raises(SystemExit) as exit:
        recipe("cats_vs_dogs").main([argument, "0", "--out", str(tmp_path / "run")])
    assert exit.value.code == 2
    assert "must be 1 or more, not 0" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow  # a thin wrapper of catdog.train, which the default suite covers: `make test-slow`
def test_own_folder_recipe_trains_a_run_folder(tmp_path):
    photos = write_photo_folder(tmp_path / "photos", per_class=8)
    result = recipe("own_folder").main(
        [str(photos), "--out", str(tmp_path / "run"), "--weights", "none", "--image-size", "32",
         "--epochs", "1", "--fine-tune-epochs", "1"]
    )
    run = pathlib.Path(result.run_dir)
    assert [record["stage"] for record in result.history] == [1, 2]
    assert (run / "model.keras").is_file() and (run / "metrics.json").is_file()
    model = keras.saving.load_model(run / "model.keras")
    assert np.asarray(model.predict(raw_photos(2), verbose=0)).shape == (2, 1)


@pytest.mark.slow  # a thin wrapper of catdog.train, which the default suite covers: `make test-slow`
def test_other_backbone_recipe_trains_three_classes(tmp_path):
    photos = write_photo_folder(tmp_path / "photos", per_class=6, names=("beagle", "persian", "pug"))
    result = recipe("other_backbone").main(
        [str(photos), "--backbone", "MobileNetV2", "--out", str(tmp_path / "run"), "--weights", "none",
         "--image-size", "32", "--epochs", "1", "--fine-tune-epochs", "1", "--batch-size", "8"]
    )
    assert result.model.class_names == ["beagle", "persian", "pug"]
    model = keras.saving.load_model(pathlib.Path(result.run_dir) / "model.keras")
    probabilities = np.asarray(model.predict(raw_photos(2), verbose=0))
    assert probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
