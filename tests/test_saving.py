"""A stage-2 model survives a .keras round trip with everything needed to go on."""

import subprocess
import sys

import keras
import numpy as np
import pytest

import catdog
from conftest import tiny_model


@pytest.fixture(scope="module")
def stage_two_file(tmp_path_factory):
    keras.utils.set_random_seed(1)
    model = tiny_model()
    catdog.compile_for_stage_one(model, 1e-3)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (16, 32, 32, 3)).astype("uint8")
    y = rng.integers(0, 2, (16, 1)).astype("float32")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[catdog.FineTuneSwitch(1, learning_rate=2e-5, verbose=0)])
    path = tmp_path_factory.mktemp("saved") / "model.keras"
    model.save(path)
    return model, path


def test_round_trip_predicts_the_same_on_raw_images(stage_two_file):
    model, path = stage_two_file
    loaded = keras.saving.load_model(path)
    raw = np.random.default_rng(5).integers(0, 256, (5, 61, 47, 3)).astype("uint8")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(raw)), keras.ops.convert_to_numpy(model(raw)), atol=1e-6
    )


def test_round_trip_restores_stage_trainable_flags_and_optimizer(stage_two_file):
    model, path = stage_two_file
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, catdog.CatDogClassifier)
    assert loaded.stage == 2 and loaded.fine_tune_at == model.fine_tune_at
    assert len(loaded.trainable_variables) == len(model.trainable_variables) > 2
    assert float(loaded.optimizer.learning_rate.numpy()) == pytest.approx(2e-5)
    assert int(loaded.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy()) == 2
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_loaded_model_keeps_training_in_stage_two(stage_two_file):
    _, path = stage_two_file
    loaded = catdog.load_model(str(path))
    x = np.zeros((8, 32, 32, 3), "uint8")
    y = np.ones((8, 1), "float32")
    loaded.fit(x, y, epochs=3, initial_epoch=2, batch_size=8, verbose=0, callbacks=[catdog.FineTuneSwitch(1, verbose=0)])
    assert int(loaded.optimizer.iterations.numpy()) == 3


def test_loads_in_a_fresh_process_after_import_catdog(stage_two_file):
    _, path = stage_two_file
    code = (
        "import numpy as np, keras, catdog\n"
        f"m = keras.saving.load_model({str(path)!r})\n"
        "p = m.predict(np.full((2, 90, 120, 3), 200, 'uint8'), verbose=0)\n"
        "print(type(m).__name__, m.stage, p.shape, float(p.min()) >= 0, float(p.max()) <= 1)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "CatDogClassifier 2 (2, 1) True True"


def test_loading_never_fetches_imagenet_weights(stage_two_file, monkeypatch):
    _, path = stage_two_file

    def no_download(*args, **kwargs):
        raise AssertionError("loading a .keras file must not download weights")

    monkeypatch.setattr(catdog.backbones, "build_mobilenet_v2", catdog.backbones.build_mobilenet_v2)
    from keras.src.utils import file_utils

    monkeypatch.setattr(file_utils, "get_file", no_download)
    assert keras.saving.load_model(path).stage == 2


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04broken"])
def test_load_model_rejects_corrupt_files_with_a_clear_error(tmp_path, content):
    path = tmp_path / "bad.keras"
    path.write_bytes(content)
    with pytest.raises(catdog.ModelFileError):
        catdog.load_model(str(path))


def test_load_model_rejects_other_keras_models(tmp_path):
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    path = tmp_path / "other.keras"
    other.save(path)
    with pytest.raises(catdog.ModelFileError, match="not a catdog model"):
        catdog.load_model(str(path))
