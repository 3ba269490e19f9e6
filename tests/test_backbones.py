"""Every named backbone: its preprocessing, both stages and the .keras round trip.

Only MobileNetV2's ImageNet weights are available offline, so the others are
built with random weights (weights=None) at 32x32, the smallest size each
family accepts.
"""

import importlib

import keras
import numpy as np
import pytest

import catdog
from catdog.backbones import BACKBONES, get_spec, preprocessing_for, spec_of_model
from test_finetune import calibrate

#: Over 15 s each on 2 shared cores: marked slow, so `make test-slow` runs them, not `make test`.
HEAVY = {
    "EfficientNetB1", "EfficientNetB2", "EfficientNetB3", "EfficientNetV2B1", "EfficientNetV2B2",
    "EfficientNetV2B3", "EfficientNetV2S", "ResNet50", "ResNet50V2", "ConvNeXtTiny", "DenseNet121",
    "EfficientNetV2B0", "MobileNetV3Large",  # their families stay in the default suite (B0, V3Small)
}


@pytest.mark.parametrize("family", sorted({spec.family for spec in BACKBONES.values()}))
def test_preprocessing_equals_the_familys_preprocess_input(family):
    """Random pixels through catdog's preprocessor and through Keras' own function."""
    pixels = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    pixels[0, 0, 0] = [0, 255, 127.5]
    modes = {spec.preprocessing for spec in BACKBONES.values() if spec.family == family}
    assert len(modes) == 1
    layer = catdog.ImagePreprocessor(32, mode=modes.pop())
    ours = keras.ops.convert_to_numpy(layer(pixels))
    module = importlib.import_module(f"keras.applications.{family}")
    theirs = module.preprocess_input(pixels.copy())
    np.testing.assert_array_equal(ours, np.asarray(theirs))


def test_preprocessing_mode_is_saved_in_the_layer_config():
    layer = catdog.ImagePreprocessor(64, mode="caffe")
    clone = catdog.ImagePreprocessor.from_config(layer.get_config())
    assert clone.get_config()["mode"] == "caffe" and clone.image_size == (64, 64)
    with pytest.raises(ValueError, match="mode"):
        catdog.ImagePreprocessor(64, mode="imagenet")


def test_names_are_forgiving_and_unknown_ones_are_config_errors():
    assert get_spec("efficientnet_b0").name == "EfficientNetB0"
    assert get_spec("mobilenetv2").name == "MobileNetV2"
    assert get_spec("EfficientNetV2-S").name == "EfficientNetV2S"
    with pytest.raises(catdog.ConfigError, match="unknown backbone"):
        get_spec("VGG99")


def test_a_backbone_object_brings_its_convention_or_must_be_told():
    resnet = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    assert spec_of_model(resnet).name == "ResNet50" and preprocessing_for(resnet) == "caffe"
    custom = keras.Sequential([keras.Input((32, 32, 3))] + [keras.layers.Conv2D(8, 3) for _ in range(3)], name="mine")
    with pytest.raises(catdog.ConfigError, match="preprocessing="):
        catdog.ImageClassifier(custom, class_names=["a", "b", "c"], image_size=32)
    model = catdog.ImageClassifier(custom, class_names=["a", "b", "c"], preprocessing="torch", image_size=32)
    assert model.preprocessor.mode == "torch" and model.fine_tune_at == 2  # its top third


@pytest.mark.parametrize(
    "name",
    [pytest.param(name, marks=pytest.mark.slow) if name in HEAVY else name for name in BACKBONES],
)
def test_every_named_backbone_trains_both_stages_and_round_trips(name, tmp_path):
    keras.utils.set_random_seed(0)
    spec = BACKBONES[name]
    model = catdog.ImageClassifier(
        backbone=name, class_names=["a", "b", "c"], image_size=32, weights=None, augmentation=False
    )
    assert model.preprocessor.mode == spec.preprocessing
    assert model.fine_tune_at == catdog.finetune.resolve_cut(model.backbone, spec.fine_tune_at)
    catdog.compile_for_stage_one(model, 1e-3)
    model.run_eagerly = True  # one step per stage: tracing 200-500 layers twice costs more than the step
    x = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("uint8")
    y = np.array([0, 2], "float32")
    calibrate(model.backbone, model.preprocessor(x))  # else random activations vanish
    above = [
        v for layer in model.backbone.layers[model.fine_tune_at:] if not catdog.finetune.is_batchnorm(layer)
        for v in layer.weights
    ]
    before = [keras.ops.convert_to_numpy(v).copy() for v in above]
    statistics = [v for v in model.backbone.weights if "moving" in v.path]
    statistics_before = [keras.ops.convert_to_numpy(v).copy() for v in statistics]
    history = model.fit(x, y, epochs=2, batch_size=2, callbacks=[catdog.FineTuneSwitch(1, verbose=0)], verbose=0)
    assert history.history["stage"] == [1, 2] and model.stage == 2
    assert int(model.optimizer.iterations.numpy()) == 1
    moved = [not np.array_equal(keras.ops.convert_to_numpy(v), b) for v, b in zip(above, before)]
    assert any(moved), "no backbone weight above the cut moved in stage 2"
    for v, b in zip(statistics, statistics_before):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), b, err_msg=v.path)
    model.save(tmp_path / "m.keras")
    loaded = catdog.load_model(str(tmp_path / "m.keras"))
    assert loaded.backbone_name == name and loaded.class_names == ["a", "b", "c"] and loaded.stage == 2
    p = keras.ops.convert_to_numpy(model(x))
    assert p.shape == (2, 3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), p, atol=1e-5)
