"""The library on the JAX backend, and `.keras` files crossing between backends.

The backend is chosen when Keras is imported, so the JAX side runs in a
subprocess: pytest under KERAS_BACKEND=jax on the stage-switch tests
(tests/test_switch.py) and on tests/jax_checks.py, which trains a two-stage
model under JAX, saves it, and loads one saved here under TensorFlow. Saving
under JAX is checked here by loading its file (stage, optimizer state,
predictions). tests/test_distribute.py's multihost run adds a resume under
JAX from a TensorFlow checkpoint.
"""

import importlib.util
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

import catdog
from conftest import tiny_model

TESTS = pathlib.Path(__file__).parent
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason='needs JAX (pip install "catdog[jax]")'),
]


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    cross = tmp_path_factory.mktemp("cross")
    keras.utils.set_random_seed(2)
    model = tiny_model()
    catdog.compile_for_stage_one(model, 1e-3)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8, 32, 32, 3)).astype("uint8")
    y = rng.integers(0, 2, (8, 1)).astype("float32")
    model.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=[catdog.FineTuneSwitch(1, verbose=0)])
    model.save(cross / "tensorflow.keras")
    images = rng.integers(0, 256, (5, 61, 47, 3)).astype("uint8")
    np.savez(cross / "tensorflow.npz", images=images, p_dog=keras.ops.convert_to_numpy(model(images)), iterations=2)

    env = {**os.environ, "KERAS_BACKEND": "jax", "CATDOG_CROSS_DIR": str(cross), "JAX_PLATFORMS": "cpu"}
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
        str(TESTS / "test_switch.py"), str(TESTS / "jax_checks.py"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, cwd=TESTS.parent)
    return cross, result


def test_switch_saving_and_cross_backend_checks_pass_under_jax(jax_run):
    _, result = jax_run
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    assert "passed" in last and "failed" not in last and "skipped" not in last, last


def test_model_saved_under_jax_predicts_the_same_under_tensorflow(jax_run):
    cross, result = jax_run
    assert (cross / "jax.keras").is_file(), result.stdout[-4000:]
    reference = np.load(cross / "jax.npz")
    loaded = catdog.load_model(str(cross / "jax.keras"))
    assert loaded.stage == 2 and int(loaded.optimizer.iterations.numpy()) == int(reference["iterations"])
    assert float(loaded.optimizer.learning_rate.numpy()) == pytest.approx(3e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(reference["images"])), reference["p_dog"], atol=1e-5)
