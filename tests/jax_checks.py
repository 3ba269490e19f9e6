"""Checks run under KERAS_BACKEND=jax by tests/test_backends.py (not collected on their own).

`CATDOG_CROSS_DIR` holds `tensorflow.keras` and `tensorflow.npz` (images and
the P(dog) TensorFlow computed); these checks load that model here, and leave
`jax.keras` and `jax.npz` for TensorFlow to load in turn.
"""

import os
import pathlib

import keras
import numpy as np
import pytest

import catdog
from conftest import tiny_model

CROSS = pathlib.Path(os.environ.get("CATDOG_CROSS_DIR", ""))
pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax" or not os.environ.get("CATDOG_CROSS_DIR"),
    reason="run by tests/test_backends.py under KERAS_BACKEND=jax",
)


def test_backend_is_jax():
    assert keras.backend.backend() == "jax"


def test_model_saved_under_tensorflow_predicts_the_same_under_jax():
    reference = np.load(CROSS / "tensorflow.npz")
    model = catdog.load_model(str(CROSS / "tensorflow.keras"))
    assert model.stage == 2 and int(model.optimizer.iterations.numpy()) == int(reference["iterations"])
    p = keras.ops.convert_to_numpy(model(reference["images"]))
    np.testing.assert_allclose(p, reference["p_dog"], atol=1e-5)


def test_two_stage_model_trained_under_jax_is_left_for_tensorflow():
    keras.utils.set_random_seed(3)
    model = tiny_model()
    catdog.compile_for_stage_one(model, 1e-3)
    # Keras' jit_compile="auto" compiles the train step only when every layer
    # supports jit; augmentation's rotation and zoom must not veto it (op by
    # op, a train step on an H200 ran 50x slower).
    assert model.augmenter is not None and model.jit_compile is True
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (8, 32, 32, 3)).astype("uint8")
    y = rng.integers(0, 2, (8, 1)).astype("float32")
    model.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=[catdog.FineTuneSwitch(1, learning_rate=3e-5, verbose=0)])
    assert model.stage == 2 and int(model.optimizer.iterations.numpy()) == 2
    model.save(CROSS / "jax.keras")
    images = rng.integers(0, 256, (4, 45, 37, 3)).astype("uint8")
    p = keras.ops.convert_to_numpy(model(images))
    np.savez(CROSS / "jax.npz", images=images, p_dog=p, iterations=2)


def test_colour_augmentation_trains_in_the_compiled_jax_step():
    # RandomColorJitter and RandomGrayscale must not veto jit_compile="auto" or
    # fail to trace in JAX's compiled train step (a candidate for the default).
    keras.utils.set_random_seed(4)
    model = tiny_model(augmentation={"color_jitter": 0.2, "grayscale": 0.1})
    assert [type(step).__name__ for step in model.augmenter.colour_steps] == ["RandomColorJitter", "RandomGrayscale"]
    catdog.compile_for_stage_one(model, 1e-3)
    assert model.jit_compile is True
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (8, 32, 32, 3)).astype("uint8")
    y = rng.integers(0, 2, (8, 1)).astype("float32")
    history = model.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=[catdog.FineTuneSwitch(1, learning_rate=3e-5, verbose=0)])
    assert model.stage == 2 and int(model.optimizer.iterations.numpy()) == 2
    assert np.isfinite(history.history["loss"]).all()
    assert all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in model.weights)
    grey = catdog.ImageAugmentation(flip=None, rotation=0, zoom=0, grayscale=1.0, value_range=(-1, 1), seed=1)
    out = keras.ops.convert_to_numpy(grey(rng.uniform(-1, 1, (2, 8, 8, 3)).astype("float32"), training=True))
    np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-6)
    np.testing.assert_allclose(out[..., 1], out[..., 2], atol=1e-6)
