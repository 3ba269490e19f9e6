"""Recipe options the robustness benchmark compares: label smoothing (off by
default) and a cosine stage-2 learning rate (the default since it won there)."""

import json
import math

import keras
import numpy as np
import pytest

import catdog
from conftest import assert_one_line_error, run_cli, tiny_model


def test_the_default_recipe_fine_tunes_on_a_cosine_from_2e_5_without_label_smoothing():
    """The cosine won on validation and on the shift suite (BENCHMARKS.md); constant 1e-5 is one option away."""
    config = catdog.TrainConfig()
    assert config.fine_tune_schedule == "cosine" and config.fine_tune_learning_rate == 2e-5
    assert config.label_smoothing == 0.0
    model = catdog.compile_for_stage_one(tiny_model(), 1e-3)
    assert model.loss.get_config()["label_smoothing"] == 0.0


def test_label_smoothing_moves_the_loss_targets_towards_one_half():
    model = catdog.compile_for_stage_one(tiny_model(), 1e-3, label_smoothing=0.2)
    labels, p = np.array([[1.0], [0.0]]), np.array([[0.9], [0.3]])
    targets = labels * 0.8 + 0.1  # 1 -> 0.9, 0 -> 0.1
    expected = -np.mean(targets * np.log(p) + (1 - targets) * np.log(1 - p))
    assert float(model.loss(labels, p)) == pytest.approx(expected, rel=1e-5)


def test_cosine_schedule_decays_the_stage_two_rate_to_zero_inside_fit():
    from types import SimpleNamespace

    from catdog.training.train import _fine_tune_optimizer

    config = catdog.TrainConfig(batch_size=4, epochs=1, fine_tune_epochs=2, fine_tune_learning_rate=1e-4,
                                fine_tune_schedule="constant")
    splits = SimpleNamespace(steps_per_epoch=2, counts={"train": 8})
    assert _fine_tune_optimizer(config, splits) is None  # constant: FineTuneSwitch's own Adam
    config.fine_tune_schedule = "cosine"
    make_optimizer = _fine_tune_optimizer(config, splits)
    keras.utils.set_random_seed(0)
    model = catdog.compile_for_stage_one(tiny_model(augmentation=False), 1e-3)
    rates = []
    model.fit(
        np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype("uint8"),
        np.array([0, 1] * 4, "float32"),
        batch_size=4, epochs=3, verbose=0,
        callbacks=[
            catdog.FineTuneSwitch(1, optimizer=make_optimizer, verbose=0),
            keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: rates.append(logs["learning_rate"])),
        ],
    )
    # Stage 2: 2 epochs of 2 steps; half way the cosine is at 1/2, at the end at 0.
    assert rates[0] == pytest.approx(1e-3)
    assert rates[1] == pytest.approx(1e-4 * 0.5 * (1 + math.cos(math.pi * 0.5)), rel=1e-4)
    assert rates[2] == pytest.approx(0.0, abs=1e-12)


def test_bad_values_are_config_errors_and_one_line_cli_errors(tmp_path, capsys):
    with pytest.raises(catdog.ConfigError, match="fine-tune-schedule"):
        catdog.TrainConfig(fine_tune_schedule="linear")
    with pytest.raises(catdog.ConfigError, match="label-smoothing"):
        catdog.TrainConfig(label_smoothing=1.0)
    code, _, err = run_cli(capsys, "train", "--out", tmp_path / "x", "--label-smoothing", "1.5")
    assert_one_line_error(code, err, "--label-smoothing")
    code, _, err = run_cli(capsys, "train", "--out", tmp_path / "x", "--fine-tune-schedule", "linear")
    assert_one_line_error(code, err, "--fine-tune-schedule")


def test_the_classifier_colour_augments_by_default_where_one_range_fits_every_channel():
    """`augmentation=True` is the recipe's: flip/rotation/zoom, colour jitter 0.2, greyscale 0.1."""
    from catdog.defaults import DEFAULT_COLOUR_AUGMENTATION
    from catdog.training.train import _seeded

    assert DEFAULT_COLOUR_AUGMENTATION == {"color_jitter": 0.2, "grayscale": 0.1}
    model = tiny_model()
    assert model.augmentation_config == DEFAULT_COLOUR_AUGMENTATION
    assert [type(step).__name__ for step in model.augmenter.colour_steps] == ["RandomColorJitter", "RandomGrayscale"]
    assert model.augmenter.value_range == (-1.0, 1.0) and len(model.augmenter.steps) == 3
    raw = catdog.ImageClassifier(class_names=2, image_size=32, alpha=0.35, weights=None, preprocessing="none")
    assert raw.augmenter.value_range == (0.0, 255.0) and raw.augmenter.color_jitter == 0.2
    # per-channel normalised pixels: the geometric steps alone, not an error
    caffe = catdog.ImageClassifier(class_names=2, image_size=32, alpha=0.35, weights=None, preprocessing="caffe")
    assert caffe.augmenter.colour_steps == [] and len(caffe.augmenter.steps) == 3
    assert tiny_model(augmentation={}).augmenter.colour_steps == []  # the former default, spelled out
    # catdog train: the run's seed goes with it; --no-colour-augmentation leaves flip/rotation/zoom
    assert _seeded(catdog.TrainConfig(seed=7), "tf") == {"seed": 7, "color_jitter": 0.2, "grayscale": 0.1}
    assert _seeded(catdog.TrainConfig(seed=7), "caffe") == {"seed": 7}
    assert _seeded(catdog.TrainConfig(seed=7, colour_augmentation=False), "tf") == {"seed": 7}
    assert _seeded(catdog.TrainConfig(augmentation=False), "tf") is False


def test_colour_augmentation_from_keras_core_is_off_in_the_layer_and_saves_with_the_model(tmp_path):
    images = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    plain = catdog.ImageAugmentation(seed=1)
    assert plain.colour_steps == [] and plain.get_config()["color_jitter"] == 0.0
    grey = catdog.ImageAugmentation(flip=None, rotation=0, zoom=0, grayscale=1.0, seed=1)
    out = np.asarray(grey(images, training=True))
    np.testing.assert_allclose(out[..., 0], out[..., 1], atol=1e-6)
    np.testing.assert_array_equal(np.asarray(grey(images, training=False)), images)
    jitter = catdog.ImageAugmentation(flip=None, rotation=0, zoom=0, color_jitter=0.3, seed=1)
    jittered = np.asarray(jitter(images, training=True))
    assert jittered.shape == images.shape and not np.allclose(jittered, images)
    model = tiny_model(augmentation={"color_jitter": 0.2, "grayscale": 0.1})
    model.save(tmp_path / "m.keras")
    loaded = catdog.load_model(str(tmp_path / "m.keras"))
    assert loaded.augmenter.get_config()["color_jitter"] == 0.2 and loaded.augmenter.grayscale == 0.1
    assert [type(step).__name__ for step in loaded.augmenter.colour_steps] == ["RandomColorJitter", "RandomGrayscale"]


def test_colour_augmentation_works_in_the_range_the_backbone_is_fed():
    """A 0..255 backbone (EfficientNet, ConvNeXt: mode "none") is jittered in 0..255, not clipped to [-1, 1]."""
    import numpy as np

    images = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    layer = catdog.ImageAugmentation(flip=None, rotation=0, zoom=0, color_jitter=0.3, value_range=(0, 255), seed=1)
    out = np.asarray(layer(images, training=True))
    # still photos on the 0..255 scale (Keras' contrast step may overshoot it), not a flat 1.0
    assert np.median(out) > 50 and out.std() > 30
    wrong = catdog.ImageAugmentation(flip=None, rotation=0, zoom=0, color_jitter=0.3, seed=1)
    assert np.asarray(wrong(images, training=True)).max() <= 1.0  # the bug this range fixes
    assert not np.allclose(out, images)
    assert catdog.ImageAugmentation.from_config(layer.get_config()).value_range == (0.0, 255.0)

    model = catdog.ImageClassifier(class_names=2, image_size=32, alpha=0.35, weights=None, preprocessing="none",
                                   augmentation={"color_jitter": 0.2})
    assert model.augmenter.value_range == (0.0, 255.0)
    assert tiny_model(augmentation={"color_jitter": 0.2}).augmenter.value_range == (-1.0, 1.0)
    # per-channel normalised input (torch, caffe's BGR): no single range is right, so it is refused
    with pytest.raises(catdog.ConfigError, match="color_jitter and grayscale"):
        catdog.ImageClassifier(class_names=2, image_size=32, alpha=0.35, weights=None, preprocessing="caffe",
                               augmentation={"grayscale": 0.1})


def test_label_smoothing_with_three_classes_spreads_the_targets_and_survives_a_reload(tmp_path):
    """Keras' sparse loss has no smoothing: catdog's own one-hot encodes, and is saved with the model."""
    model = catdog.ImageClassifier(class_names=["a", "b", "c"], image_size=32, alpha=0.35, weights=None)
    model = catdog.compile_for_stage_one(model, 1e-3, label_smoothing=0.3)
    labels, p = np.array([0, 2]), np.array([[0.8, 0.1, 0.1], [0.2, 0.2, 0.6]])
    targets = np.eye(3)[labels] * 0.7 + 0.1  # 0.3 spread over 3 classes
    expected = -np.mean(np.sum(targets * np.log(p), axis=1))
    assert float(model.loss(labels, p)) == pytest.approx(expected, rel=1e-5)
    assert float(model.loss(labels[:, None], p)) == pytest.approx(expected, rel=1e-5)  # (batch, 1) labels

    images = np.random.default_rng(0).uniform(0, 255, (6, 32, 32, 3)).astype("float32")
    model.fit(images, np.array([0, 1, 2, 0, 1, 2]), epochs=1, verbose=0)
    path = tmp_path / "three.keras"
    catdog.save_model(model, path)
    reloaded = keras.saving.load_model(path)
    assert type(reloaded.loss).__name__ == "SparseCategoricalCrossentropyWithSmoothing"
    assert reloaded.loss.get_config()["label_smoothing"] == pytest.approx(0.3)
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-5)


def test_the_smoothed_sparse_loss_works_in_a_plain_functional_model_and_refuses_bad_smoothing():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    model.compile("adam", loss=catdog.SparseCategoricalCrossentropyWithSmoothing(0.1))
    history = model.fit(np.eye(4, dtype="float32"), np.array([0, 1, 2, 1]), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and all(np.isfinite(history.history["loss"]))
    with pytest.raises(ValueError, match="label_smoothing"):
        catdog.SparseCategoricalCrossentropyWithSmoothing(1.0)
