import keras
import numpy as np
import pytest

import catdog


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
@pytest.mark.parametrize("size", [(17, 23), (224, 224), (300, 120)])
def test_preprocessor_resizes_and_scales_to_minus_one_one(dtype, size):
    layer = catdog.ImagePreprocessor(image_size=64)
    images = np.zeros((2, *size, 3), dtype)
    images[0] = 255
    out = keras.ops.convert_to_numpy(layer(images))
    assert out.shape == (2, 64, 64, 3)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], 1.0, atol=1e-6)
    np.testing.assert_allclose(out[1], -1.0, atol=1e-6)


def test_preprocessor_maps_mid_grey_to_zero_and_keeps_values_at_target_size():
    layer = catdog.ImagePreprocessor(image_size=(8, 8))
    images = np.random.default_rng(0).integers(0, 256, (1, 8, 8, 3)).astype("uint8")
    out = keras.ops.convert_to_numpy(layer(images))
    np.testing.assert_allclose(out, images / 127.5 - 1.0, atol=1e-6)
    grey = keras.ops.convert_to_numpy(layer(np.full((1, 8, 8, 3), 127.5, "float32")))
    np.testing.assert_allclose(grey, 0.0, atol=1e-6)


def test_preprocessor_accepts_single_image_grey_and_rgba():
    layer = catdog.ImagePreprocessor(image_size=16)
    assert layer(np.zeros((20, 30, 3), "uint8")).shape == (1, 16, 16, 3)
    grey = keras.ops.convert_to_numpy(layer(np.full((1, 16, 16, 1), 255, "uint8")))
    assert grey.shape == (1, 16, 16, 3) and np.allclose(grey, 1.0)
    rgba = keras.ops.convert_to_numpy(layer(np.full((1, 16, 16, 4), 255, "uint8")))
    assert rgba.shape == (1, 16, 16, 3)


def test_augmentation_changes_images_only_in_training():
    layer = catdog.ImageAugmentation(seed=1)
    images = np.random.default_rng(0).uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    inference = keras.ops.convert_to_numpy(layer(images, training=False))
    np.testing.assert_array_equal(inference, images)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(images)), images)
    trained = keras.ops.convert_to_numpy(layer(images, training=True))
    assert trained.shape == images.shape
    assert not np.allclose(trained, images)


@pytest.mark.parametrize("flip", ["horizontal", "vertical", "horizontal_and_vertical"])
def test_one_warp_matches_keras_layers_applied_one_after_the_other(flip):
    # On a linear ramp bilinear resampling is exact, so one warp and three
    # successive warps must agree wherever no pixel comes from the border fill.
    seed, size = 5, 64
    y, x = np.mgrid[0:size, 0:size].astype("float32")
    ramp = np.stack([0.01 * x + 0.02 * y, 0.03 * x - 0.01 * y, -0.02 * x], axis=-1)
    images = np.repeat(ramp[None], 8, axis=0)
    fused = catdog.ImageAugmentation(flip=flip, rotation=0.02, zoom=0.05, seed=seed)
    steps = [
        keras.layers.RandomFlip(flip, seed=seed),
        keras.layers.RandomRotation(0.02, fill_mode="reflect", seed=seed + 1),
        keras.layers.RandomZoom(0.05, fill_mode="reflect", seed=seed + 2),
    ]
    one = keras.ops.convert_to_numpy(fused(images, training=True))
    successive = images
    for step in steps:
        successive = step(successive, training=True)
    successive = keras.ops.convert_to_numpy(successive)
    centre = slice(size // 4, 3 * size // 4)
    np.testing.assert_allclose(one[:, centre, centre], successive[:, centre, centre], atol=1e-4)
    assert not np.allclose(one, images, atol=1e-3)


def test_flip_alone_mirrors_exactly():
    layer = catdog.ImageAugmentation(flip="horizontal", rotation=0, zoom=0, seed=2)
    images = np.random.default_rng(0).uniform(-1, 1, (16, 8, 8, 3)).astype("float32")
    out = keras.ops.convert_to_numpy(layer(images, training=True))
    mirrored = [np.allclose(o, i[:, ::-1], atol=1e-5) for o, i in zip(out, images)]
    unchanged = [np.allclose(o, i, atol=1e-5) for o, i in zip(out, images)]
    assert all(m or u for m, u in zip(mirrored, unchanged))
    assert any(mirrored) and any(unchanged)


def test_augmentation_vetoes_xla_only_on_tensorflow_whose_warp_has_no_xla_kernel():
    """The layer's jit flag decides whether jit_compile="auto" compiles a model."""
    import tensorflow as tf

    layer = catdog.ImageAugmentation(seed=1)
    assert keras.backend.backend() == "tensorflow"
    assert not layer.supports_jit and not any(step.supports_jit for step in layer.steps)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype("float32")
    compiled = tf.function(lambda x: layer(x, training=True), jit_compile=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match="ImageProjectiveTransformV3"):
        compiled(images)
    # Under JAX the flags are True: tests/jax_checks.py checks that the model compiles.


def test_augmentation_can_be_switched_off_piecewise():
    layer = catdog.ImageAugmentation(flip=None, rotation=0, zoom=0)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype("float32")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(images, training=True)), images)


@pytest.mark.parametrize(
    "layer",
    [
        catdog.ImagePreprocessor(image_size=(96, 128), interpolation="nearest"),
        catdog.ImageAugmentation(flip="horizontal_and_vertical", rotation=0.2, zoom=0.3, seed=7),
    ],
)
def test_layer_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["module"] is None or "catdog" in serialized.get("registered_name", "")
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is type(layer) and revived.get_config() == config
