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
    """The file's weights and layers load exactly; photos of another size than
    the model's now get the pipeline's rounding (issue 13: one answer per photo),
    which 0.1.0 lacked, so the exact 0.1.0 numbers come back with it switched off."""
    model, reference = legacy
    preprocessor = model.preprocessor
    assert preprocessor.quantize_resized  # old files get the fix too
    preprocessor.quantize_resized = False
    try:
        p = keras.ops.convert_to_numpy(model(reference["images"]))
    finally:
        preprocessor.quantize_resized = True
    # 1e-5: the reference was computed on an Intel Xeon; an AMD EPYC's oneDNN
    # kernels land up to 2e-6 away from it with the very same weights.
    np.testing.assert_allclose(p, reference["p_dog"], atol=1e-5)


def test_legacy_file_gives_the_pipelines_answer_for_any_photo_size(legacy):
    from catdog.data.decode import resize_uint8

    model, reference = legacy
    resized = np.stack([resize_uint8(image, model.image_size).numpy() for image in reference["images"]])
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(reference["images"])),
        keras.ops.convert_to_numpy(model(resized)),
        atol=1e-6,
    )


def test_legacy_file_restores_stage_and_optimizer(legacy):
    model, _ = legacy
    assert isinstance(model, catdog.CatDogClassifier)
    assert model.stage == 2 and model.fine_tune_at == 152
    assert int(model.optimizer.iterations.numpy()) == 2
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(2e-5)
