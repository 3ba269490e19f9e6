"""BatchNorm folding changes the arithmetic, never the function or its gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import catdog
from catdog.folding import conv_batchnorm_pairs
from conftest import tiny_model


def _randomize_batchnorm(model, seed=0):
    """Non-trivial statistics, so that a wrong fold cannot go unnoticed."""
    rng = np.random.default_rng(seed)
    for layer in model.backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.1, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.1, n).astype("float32"))


@pytest.fixture(scope="module")
def twins():
    folded = tiny_model(augmentation=False, dropout=0.0)
    _randomize_batchnorm(folded)
    plain = tiny_model(augmentation=False, dropout=0.0, fold_batchnorm=False)
    plain.set_weights(folded.get_weights())
    images = np.random.default_rng(1).integers(0, 256, (6, 32, 32, 3)).astype("uint8")
    return folded, plain, images


def test_every_mobilenet_batchnorm_is_folded():
    model = tiny_model()
    batchnorms = [l for l in model.backbone.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert len(conv_batchnorm_pairs(model.backbone)) == len(batchnorms) == 52
    assert tiny_model(fold_batchnorm=False)._backbone_forward is None


def test_folded_features_equal_the_plain_backbone(twins):
    folded, plain, images = twins
    x = folded.preprocessor(images)
    a = keras.ops.convert_to_numpy(folded.features(x))
    b = keras.ops.convert_to_numpy(plain.backbone(x, training=False))
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(folded(images)), keras.ops.convert_to_numpy(plain(images)), atol=1e-5
    )


def test_folded_gradients_equal_the_plain_gradients(twins):
    folded, plain, images = twins
    folded.unfreeze_backbone(100)
    plain.unfreeze_backbone(100)
    labels = np.array([[0], [1], [0], [1], [1], [0]], "float32")

    def gradients(model):
        with tf.GradientTape() as tape:
            loss = keras.ops.mean(keras.losses.binary_crossentropy(labels, model(images)))
        return tape.gradient(loss, model.trainable_variables)

    for a, b in zip(gradients(folded), gradients(plain)):
        a, b = a.numpy(), b.numpy()
        assert np.linalg.norm(a - b) <= 1e-3 * np.linalg.norm(b) + 1e-12


def test_fold_setting_survives_saving(tmp_path, twins):
    folded, _, images = twins
    path = tmp_path / "m.keras"
    folded.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.fold_batchnorm and loaded._backbone_forward is not None
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(images)), keras.ops.convert_to_numpy(folded(images)), atol=1e-6
    )
