"""Real ImageNet weights and real photographs from ../shared (skipped without it)."""

import json
import os
import shutil

import keras
import pytest

import catdog
from conftest import SHARED, SHARED_PHOTOS, needs_shared

pytestmark = [needs_shared, pytest.mark.integration]


@pytest.fixture(scope="module", autouse=True)
def shared_keras_home():
    """Point Keras' standard cache at ../shared/keras, as .ci/run does."""
    old = os.environ.get("KERAS_HOME")
    os.environ["KERAS_HOME"] = str(SHARED / "keras")
    yield
    if old is None:
        os.environ.pop("KERAS_HOME", None)
    else:
        os.environ["KERAS_HOME"] = old


def test_imagenet_weights_load_from_the_standard_cache():
    backbone = catdog.build_mobilenet_v2(224, 1.0, "imagenet")
    assert backbone.count_params() == 2_257_984
    assert len(backbone.layers) == 154


def few_photos(tmp_path, split, per_class):
    root = tmp_path / split
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True)
        source = SHARED_PHOTOS / split / name
        for filename in sorted(os.listdir(source))[:per_class]:
            shutil.copy(source / filename, root / name / filename)
    return root


def test_short_two_stage_run_on_real_photos_is_well_above_chance(tmp_path):
    train_dir = few_photos(tmp_path, "train", 24)
    val_dir = few_photos(tmp_path, "validation", 20)
    result = catdog.train(
        catdog.TrainConfig(
            data=str(train_dir), val_data=str(val_dir), out=str(tmp_path / "run"),
            image_size=224, batch_size=8, epochs=3, fine_tune_epochs=1, seed=0, verbose=0,
        )
    )
    stages = [record["stage"] for record in result.history]
    assert stages == [1, 1, 1, 2]
    assert result.final["val_accuracy"] >= 0.85, result.history
    loaded = keras.saving.load_model(os.path.join(result.run_dir, "model.keras"))
    assert loaded.stage == 2 and loaded.weights_source == "imagenet"

    # The run's own evaluation is the one `catdog evaluate` gives on the loaded model.
    with open(os.path.join(result.run_dir, "metrics.json")) as handle:
        written = json.load(handle)
    again = catdog.evaluate(loaded, str(val_dir))
    assert written["n_images"] == again.n_images == 40
    assert written["confusion_matrix"] == again.confusion_matrix.tolist()
    assert written["auc"] == pytest.approx(again.auc, abs=1e-6)
    assert written["log_loss"] == pytest.approx(again.log_loss, abs=1e-5)
    assert os.path.getsize(os.path.join(result.run_dir, "report.html")) > 10_000
