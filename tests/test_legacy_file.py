"""`.keras` files written by catdog 0.1.0 still load and predict the same.

tests/fixtures/legacy_v0_1.keras was saved by the release before backbones
and class names became configurable (see tests/fixtures/make_legacy.py).
"""

import pathlib

import keras
import numpy as np
import pytest

import catdog

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def legacy():
    model = catdog.load_model(str(FIXTURES / "legacy_v0_1.keras"))
    return model, np.load(FIXTURES / "legacy_v0_1.npz")


def test_legacy_file_predicts_what_it_predicted_when_saved(legacy):
    model, reference = legacy
    p = keras.ops.convert_to_numpy(model(reference["images"]))
    np.testing.assert_allclose(p, reference["p_dog"], atol=1e-6)


def test_legacy_file_restores_stage_and_optimizer(legacy):
    model, _ = legacy
    assert isinstance(model, catdog.CatDogClassifier)
    assert model.stage == 2 and model.fine_tune_at == 152
    assert int(model.optimizer.iterations.numpy()) == 2
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(2e-5)
