import keras
import numpy as np
import pytest

import catdog
from conftest import calibrate_batchnorm, tiny_model


def _bn_layers(model):
    return [l for l in model.backbone.layers if isinstance(l, keras.layers.BatchNormalization)]


def test_stage_one_trains_only_the_head():
    model = tiny_model()
    assert model.stage == 1
    names = {v.path for v in model.trainable_variables}
    assert len(names) == 2 and all("p_dog" in n for n in names)


def test_predict_returns_probability_of_dog_for_raw_images():
    model = tiny_model()
    images = np.random.default_rng(0).integers(0, 256, (3, 50, 70, 3)).astype("uint8")
    p = keras.ops.convert_to_numpy(model(images))
    assert p.shape == (3, 1)
    assert np.all((p >= 0) & (p <= 1))


def test_unfreeze_from_index_keeps_lower_layers_and_batchnorm_frozen():
    model = tiny_model()
    model.unfreeze_backbone(100)
    assert model.stage == 2
    layers = model.backbone.layers
    assert all(not l.trainable for l in layers[:100])
    assert all(not l.trainable for l in _bn_layers(model))
    trainable_layers = [l for l in layers[100:] if l.trainable and l.trainable_weights]
    assert trainable_layers, "the top of the backbone must train in stage 2"
    owned = {id(w) for l in trainable_layers for w in l.trainable_weights}
    backbone_vars = [v for v in model.trainable_variables if "p_dog" not in v.path]
    assert {id(v) for v in backbone_vars} == owned


def test_unfreeze_by_layer_name_matches_index():
    model = tiny_model()
    name = model.backbone.layers[120].name
    model.unfreeze_backbone(name)
    assert model.fine_tune_at == 120
    by_index = tiny_model()
    by_index.unfreeze_backbone(120)
    assert len(model.trainable_variables) == len(by_index.trainable_variables)


def test_freeze_after_unfreeze_returns_to_stage_one():
    model = tiny_model()
    model.unfreeze_backbone()
    model.freeze_backbone()
    assert model.stage == 1 and len(model.trainable_variables) == 2


@pytest.mark.parametrize("bad", [-1, 154, 10_000, "no_such_layer"])
def test_bad_fine_tune_layer_is_a_config_error(bad):
    with pytest.raises(catdog.ConfigError):
        tiny_model(fine_tune_at=bad)


def test_backbone_runs_in_inference_mode_even_when_training():
    model = tiny_model(augmentation=False, dropout=0.0)
    model.unfreeze_backbone(0)
    for layer in _bn_layers(model):
        assert not layer.trainable
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("uint8")
    before = [l.moving_mean.numpy().copy() for l in _bn_layers(model)]
    a = keras.ops.convert_to_numpy(model(images, training=True))
    b = keras.ops.convert_to_numpy(model(images, training=False))
    np.testing.assert_allclose(a, b, atol=1e-6)
    for layer, mean in zip(_bn_layers(model), before):
        np.testing.assert_array_equal(layer.moving_mean.numpy(), mean)


def _training_call_changes_images(model, images):
    a = keras.ops.convert_to_numpy(model(images, training=True))
    b = keras.ops.convert_to_numpy(model(images, training=False))
    return not np.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("augment_stage_one", [False, True])
def test_augmentation_runs_while_fine_tuning_and_in_stage_one_only_when_asked(augment_stage_one):
    augmentation = {"rotation": 0.25, "zoom": 0.3, "seed": 1}
    model = tiny_model(augmentation=augmentation, dropout=0.0, augment_stage_one=augment_stage_one)
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("uint8")
    calibrate_batchnorm(model, images)  # else a random backbone's output is constant
    assert model.augments_now is augment_stage_one
    assert _training_call_changes_images(model, images) is augment_stage_one
    model.unfreeze_backbone()
    assert model.augments_now and _training_call_changes_images(model, images)
    clone = catdog.CatDogClassifier.from_config(model.get_config())
    assert clone.augment_stage_one is augment_stage_one and clone.augments_now


def test_model_config_round_trip_carries_stage():
    model = tiny_model(fine_tune_at=110, dropout=0.3, augmentation={"rotation": 0.05, "seed": 3})
    model.unfreeze_backbone()
    config = model.get_config()
    assert config["stage"] == 2 and config["fine_tune_at"] == 110
    clone = catdog.CatDogClassifier.from_config(config)
    assert clone.stage == 2
    assert len(clone.trainable_variables) == len(model.trainable_variables)
    assert clone.augmenter.rotation == 0.05 and clone.dropout_rate == 0.3


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(catdog.WeightsUnavailableError, match="not found"):
        tiny_model(weights=str(tmp_path / "nope.h5"))


def test_offline_imagenet_download_failure_says_how_to_provide_weights(monkeypatch, tmp_path):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://example.invalid/w.h5: None -- offline")

    monkeypatch.setattr(file_utils, "get_file", offline)
    monkeypatch.setattr(catdog.backbones, "cached_imagenet_weights", lambda *a: None)
    with pytest.raises(catdog.WeightsUnavailableError) as info:
        catdog.build_mobilenet_v2(224, 1.0, "imagenet")
    message = str(info.value)
    assert "KERAS_HOME" in message and "--weights" in message and "\n" not in message


def test_mixed_precision_computes_in_float16_and_outputs_float32(tmp_path):
    model = tiny_model(mixed_precision=True)
    assert model.backbone.layers[1].compute_dtype == "float16"
    assert model.backbone.layers[1].kernel.dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # global policy untouched
    catdog.compile_for_stage_one(model, 1e-3)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("uint8")
    p = model(images)
    assert p.dtype == "float32"
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.mixed_precision and loaded.backbone.layers[1].compute_dtype == "float16"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(images)), keras.ops.convert_to_numpy(p), atol=1e-3)
