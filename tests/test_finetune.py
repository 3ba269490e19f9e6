"""FineTuneSwitch and the fine-tuning mechanism on models catdog did not build.

The acceptance case: a Functional model a user of another Keras project
would write, around `keras.applications.EfficientNetB0` with catdog's
preprocessing and augmentation layers and a 3-class softmax head, trained
through both stages in one fit(). tests/test_backends.py-style, the same
checks run again under KERAS_BACKEND=jax in a subprocess.
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
from catdog import finetune

TESTS = pathlib.Path(__file__).parent
CUT = "block6a_expand_conv"


def calibrate(base, images):
    """Give a random backbone the BatchNorm statistics of `images` (see conftest)."""
    batchnorms = [l for l in finetune.sublayers(base) if finetune.is_batchnorm(l)]
    momenta = [l.momentum for l in batchnorms]
    for layer in batchnorms:
        layer.momentum = 0.0
    base(images, training=True)
    for layer, momentum in zip(batchnorms, momenta):
        layer.momentum = momentum


def efficientnet_model(seed=0):
    keras.utils.set_random_seed(seed)
    base = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3))
    inputs = keras.Input((32, 32, 3))
    mode = catdog.backbones.preprocessing_for(base)
    x = catdog.ImagePreprocessor(32, mode=mode, name="preprocessor")(inputs)
    x = catdog.ImageAugmentation(seed=seed, name="augmentation")(x)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs), base


class Snapshot(keras.callbacks.Callback):
    def __init__(self, base):
        super().__init__()
        self.base = base
        self.after_epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.after_epoch.append(weights_of(self.base))


def weights_of(layer):
    return {v.path: keras.ops.convert_to_numpy(v).copy() for v in layer.weights}


@pytest.fixture(scope="module")
def functional_run(tmp_path_factory):
    model, base = efficientnet_model()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (12, 32, 32, 3)).astype("float32")
    y = np.arange(12) % 3
    calibrate(base, x)
    # compiled with the backbone trainable: the switch freezes it for stage 1
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    initial = weights_of(base)
    snapshot = Snapshot(base)
    switch = catdog.FineTuneSwitch(1, fine_tune_at=CUT, learning_rate=1e-3, backbone=base.name, verbose=0)
    history = model.fit(x, y, epochs=2, batch_size=6, callbacks=[switch, snapshot], verbose=0)
    path = tmp_path_factory.mktemp("functional") / "model.keras"
    model.save(path)
    return model, base, initial, snapshot.after_epoch, history, path


def _cut_paths(base):
    index = finetune.resolve_cut(base, CUT)
    below = {v.path for layer in base.layers[:index] for v in layer.weights}
    above = {v.path for layer in base.layers[index:] for v in layer.trainable_weights}
    stats = {
        v.path
        for layer in finetune.sublayers(base)
        if finetune.is_batchnorm(layer)
        for v in (layer.moving_mean, layer.moving_variance)
    }
    return below, above, stats


def test_functional_model_switches_stage_in_one_fit(functional_run):
    model, base, _, _, history, _ = functional_run
    assert history.history["stage"] == [1, 2]
    assert history.history["learning_rate"] == pytest.approx([1e-2, 1e-3])
    index = finetune.resolve_cut(base, CUT)
    assert not any(layer.trainable for layer in base.layers[:index])
    assert all(not l.trainable for l in finetune.sublayers(base) if finetune.is_batchnorm(l))
    trainable = {id(v) for v in model.trainable_variables}
    assert {id(v) for v in base.layers[index].trainable_weights} <= trainable


def test_functional_below_the_cut_and_batchnorm_statistics_are_bit_identical(functional_run):
    _, base, initial, after_epoch, _, _ = functional_run
    below, above, stats = _cut_paths(base)
    assert below and above and stats
    for state in after_epoch:  # after stage 1 and after stage 2
        for path in below | stats:
            np.testing.assert_array_equal(state[path], initial[path], err_msg=path)
    # stage 1 moved nothing in the backbone; stage 2 moved the top
    for path in above:
        np.testing.assert_array_equal(after_epoch[0][path], initial[path], err_msg=path)
    moved = [p for p in above if not np.array_equal(after_epoch[1][p], initial[p])]
    kernels = [p for p in above if p.endswith("kernel")]
    assert set(kernels) <= set(moved), sorted(set(kernels) - set(moved))[:5]


def test_functional_model_reloads_in_a_fresh_process_and_predicts_the_same(functional_run, tmp_path):
    model, _, _, _, _, path = functional_run
    images = np.random.default_rng(3).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    np.save(tmp_path / "images.npy", images)
    code = (
        "import sys, numpy as np, keras, catdog\n"
        f"m = keras.saving.load_model({str(path)!r})\n"
        f"np.save({str(tmp_path / 'p.npy')!r}, keras.ops.convert_to_numpy(m(np.load({str(tmp_path / 'images.npy')!r}))))\n"
        "print(m.get_layer('preprocessor').mode, m.optimizer.iterations.numpy())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-2:] == ["none", "2"]
    expected = keras.ops.convert_to_numpy(model(images))
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"), expected, atol=1e-6)
    assert expected.shape == (4, 3)


def test_sequential_and_subclassed_models_switch_too():
    def backbone():
        return keras.Sequential(
            [
                keras.Input((8, 8, 3)),
                keras.layers.Conv2D(4, 3, name="c1"),
                keras.layers.BatchNormalization(name="bn1"),
                keras.layers.Conv2D(4, 3, name="c2"),
                keras.layers.BatchNormalization(name="bn2"),
            ],
            name="tiny_backbone",
        )

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.backbone = backbone()
            self.pool = keras.layers.GlobalAveragePooling2D()
            self.out = keras.layers.Dense(1, activation="sigmoid")

        def call(self, x, training=None):
            return self.out(self.pool(self.backbone(x, training=False)))

    x = np.random.default_rng(0).normal(size=(8, 8, 8, 3)).astype("float32")
    y = (np.arange(8) % 2).astype("float32")
    sequential = keras.Sequential([keras.Input((8, 8, 3)), backbone(), keras.layers.Flatten(), keras.layers.Dense(1)])
    for model, name in ((sequential, "tiny_backbone"), (Subclassed(), None)):
        model.compile("adam", "mse")
        switch = catdog.FineTuneSwitch(1, fine_tune_at="c2", backbone=name, verbose=0)
        history = model.fit(x, y, epochs=2, batch_size=8, callbacks=[switch], verbose=0)
        base = finetune.find_backbone(model, name)
        assert history.history["stage"] == [1, 2]
        assert [l.trainable for l in base.layers] == [False, False, True, False]
        assert len(model.optimizer.variables) == 2 + 2 * len(model.trainable_variables)


def test_cut_by_index_name_and_fraction():
    base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3), alpha=0.35)
    assert finetune.resolve_cut(base, 100) == 100
    assert finetune.resolve_cut(base, base.layers[120].name) == 120
    assert finetune.resolve_cut(base, 0.5) == round(0.5 * len(base.layers))
    assert finetune.resolve_cut(base, -4) == len(base.layers) - 4
    for bad in (1000, "nope", 1.5):
        with pytest.raises(catdog.ConfigError):
            finetune.resolve_cut(base, bad)
    index = finetune.unfreeze_from(base, 0.9)
    assert [l.trainable for l in base.layers[:index]] == [False] * index
    assert any(l.trainable and l.trainable_weights for l in base.layers[index:])


def test_gradual_unfreezing_moves_the_cut_down_each_epoch():
    """The other policy proves the hooks: one more block trains each epoch."""
    keras.utils.set_random_seed(0)
    base = keras.Sequential(
        [keras.Input((8, 8, 3))]
        + [layer for b in range(3) for layer in (keras.layers.Conv2D(4, 3, padding="same", name=f"b{b}_conv"), keras.layers.BatchNormalization(name=f"b{b}_bn"))],
        name="blocks",
    )
    model = keras.Sequential([keras.Input((8, 8, 3)), base, keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(1e-3), "mse")

    class Kernels(keras.callbacks.Callback):
        seen = []

        def on_epoch_end(self, epoch, logs=None):
            self.seen.append(sorted(v.path.split("/")[-2] for v in model.trainable_variables if v.path.endswith("kernel")))

    policy = catdog.GradualUnfreezing(1, block_starts=["b1_conv", "b2_conv"], learning_rate=1e-4, backbone="blocks", verbose=0)
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype("float32")
    history = model.fit(x, np.zeros((4, 1)), epochs=4, batch_size=4, callbacks=[policy, Kernels()], verbose=0)
    dense = model.layers[-1].name
    assert Kernels.seen == [[dense], ["b2_conv", dense], ["b1_conv", "b2_conv", dense], ["b1_conv", "b2_conv", dense]]
    assert history.history["stage"] == [1, 2, 2, 2]
    assert history.history["learning_rate"] == pytest.approx([1e-3, 1e-4, 1e-4, 1e-4])
    # a fresh optimizer at each move, none when the cut stays
    assert int(model.optimizer.iterations.numpy()) == 2
    assert not any(layer.trainable for layer in base.layers if "bn" in layer.name)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason='needs JAX (pip install "catdog[jax]")')
def test_functional_switch_under_jax():
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
        str(TESTS / "test_finetune.py"), "-k", "functional and not jax",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, cwd=TESTS.parent)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    assert "3 passed" in last and "failed" not in last and "skipped" not in last, last
