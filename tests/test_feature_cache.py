"""Stage 1's feature cache: same numbers as computing them, fewer backbone passes."""

import keras
import numpy as np
import pytest

import catdog
from catdog.training.feature_cache import StageOneFeatureCache
from conftest import calibrate_batchnorm, tiny_model, write_photo_folder

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="the feature cache is TensorFlow-only"
)

N_TRAIN, N_VAL, BATCH = 24, 8, 8


def _data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (N_TRAIN + N_VAL, 32, 32, 3)).astype("uint8")
    y = rng.integers(0, 2, (N_TRAIN + N_VAL, 1)).astype("float32")
    return (x[:N_TRAIN], y[:N_TRAIN]), (x[N_TRAIN:], y[N_TRAIN:])


def _fit(epochs, cache, switch_epoch=None, **model_args):
    (x, y), validation = _data()
    keras.utils.set_random_seed(0)
    model = tiny_model(**{"augmentation": False, **model_args})
    calibrate_batchnorm(model, x)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", metrics=["accuracy"])
    callbacks = [cache] if cache is not None else []
    if switch_epoch is not None:
        callbacks.append(catdog.FineTuneSwitch(switch_epoch, learning_rate=1e-2, verbose=0))
    keras.utils.set_random_seed(1)  # the same shuffles and dropout masks with or without a cache
    history = model.fit(
        x, y, epochs=epochs, batch_size=BATCH, validation_data=validation, callbacks=callbacks, verbose=0
    )
    return model, history.history, validation


@pytest.fixture(scope="module")
def uncached():
    """Two stage-1 epochs computing every feature: what the cache must match."""
    model, history, _ = _fit(2, None)
    return model, history


def test_cached_stage_one_gives_the_same_weights_and_metrics_with_fewer_backbone_passes(uncached):
    cache = StageOneFeatureCache()
    cached, cached_history, _ = _fit(2, cache)
    plain, plain_history = uncached
    for a, b in zip(cached.classifier.weights, plain.classifier.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    for key in ("loss", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(cached_history[key], plain_history[key], rtol=1e-5, atol=1e-6)
    # the first epoch computes every photo once; the second reads them all
    assert cache.last_counts == {
        "misses": N_TRAIN + N_VAL,
        "hits": N_TRAIN + N_VAL,
        "stored": N_TRAIN + N_VAL,
    }
    assert cached.feature_cache is None  # detached after fit()


def test_the_switch_turns_the_cache_off_and_stage_two_validation_sees_the_new_backbone(uncached):
    cache = StageOneFeatureCache()
    model, history, (x_val, y_val) = _fit(2, cache, switch_epoch=1)
    assert model.stage == 2 and model.feature_cache is None
    # stage 1 (one epoch) filled the cache; stage 2 computed live, outside it
    assert cache.last_counts == {"misses": N_TRAIN + N_VAL, "hits": 0, "stored": N_TRAIN + N_VAL}
    live = model.evaluate(x_val, y_val, batch_size=BATCH, verbose=0, return_dict=True)
    np.testing.assert_allclose(history["val_loss"][-1], live["loss"], rtol=1e-5)
    # the check above has teeth: fine-tuning did move the validation loss
    assert abs(uncached[1]["val_loss"][-1] - live["loss"]) > 1e-4


def test_augmented_training_batches_are_never_served_from_the_cache():
    cache = StageOneFeatureCache()
    _fit(2, cache, augment_stage_one=True, augmentation={"rotation": 0.2, "seed": 1})
    # the training batches never went through the cache; the (unaugmented)
    # validation photos did: computed in the first epoch, known in the second
    assert cache.last_counts == {"misses": N_VAL, "hits": N_VAL, "stored": N_VAL}


@pytest.mark.slow  # a long run whose path the default suite also takes: `make test-slow` (keeps `make test` near 10 minutes)
def test_a_full_cache_computes_what_does_not_fit(uncached):
    cache = StageOneFeatureCache(capacity=N_TRAIN // 2)
    cached, cached_history, _ = _fit(2, cache)
    np.testing.assert_allclose(cached_history["val_loss"], uncached[1]["val_loss"], rtol=1e-5, atol=1e-6)
    assert cache.last_counts["stored"] <= N_TRAIN // 2
    assert cache.last_counts["hits"] <= N_TRAIN // 2


def test_no_cache_where_it_cannot_be_used():
    cache = StageOneFeatureCache()
    model = tiny_model()
    model.unfreeze_backbone()
    assert "fine-tuned" in cache.why_not(model)
    assert cache.why_not(tiny_model()) is None
    import tensorflow as tf

    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        mirrored = tiny_model()
        mirrored.compile(optimizer="adam", loss="binary_crossentropy")
    assert "strategy" in cache.why_not(mirrored)
    assert "hook" in cache.why_not(keras.Sequential([keras.layers.Dense(1)]))


@pytest.mark.slow  # a long run whose path the default suite also takes: `make test-slow` (keeps `make test` near 10 minutes)
def test_train_gives_the_same_run_with_and_without_the_feature_cache(tmp_path):
    # stage 1 only: what comes after the switch is the same code with or without it
    data = write_photo_folder(tmp_path / "photos", per_class=5)
    common = dict(
        data=str(data), image_size=32, alpha=0.35, weights=None, epochs=2, fine_tune_epochs=0,
        batch_size=4, seed=3, verbose=0,
    )
    cached = catdog.train(out=str(tmp_path / "cached"), feature_cache=True, **common)
    plain = catdog.train(out=str(tmp_path / "plain"), feature_cache=False, **common)
    for key in ("loss", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(
            [r[key] for r in cached.history], [r[key] for r in plain.history], rtol=1e-4, atol=1e-6
        )
