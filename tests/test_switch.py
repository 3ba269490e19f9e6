"""The stage switch inside one fit(): what trains, when, and at what rate."""

import keras
import numpy as np
import pytest

import catdog
from conftest import calibrate_batchnorm, tiny_model


class Snapshot(keras.callbacks.Callback):
    """Records, at each epoch end, what the switch test needs to compare."""

    def __init__(self, watch):
        super().__init__()
        self.watch = watch
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(
            {
                "trainable": {id(v) for v in self.model.trainable_variables},
                "lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
                "values": {name: v.numpy().copy() for name, v in self.watch.items()},
                "logs": dict(logs or {}),
            }
        )


@pytest.fixture(scope="module")
def two_stage_fit():
    keras.utils.set_random_seed(0)
    model = tiny_model(augmentation=False)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (16, 32, 32, 3)).astype("uint8")
    y = rng.integers(0, 2, (16, 1)).astype("float32")
    calibrate_batchnorm(model, x)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", metrics=["accuracy"])
    layers = model.backbone.layers
    top_conv = next(l for l in layers[100:] if isinstance(l, keras.layers.Conv2D))
    low_conv = next(l for l in layers[:100] if isinstance(l, keras.layers.Conv2D))
    bns = [l for l in layers if isinstance(l, keras.layers.BatchNormalization)]
    watch = {"top_conv": top_conv.kernel, "low_conv": low_conv.kernel}
    watch.update({f"bn{i}_mean": bn.moving_mean for i, bn in enumerate(bns)})
    watch.update({f"bn{i}_var": bn.moving_variance for i, bn in enumerate(bns)})
    watch.update({f"bn{i}_gamma": bn.gamma for i, bn in enumerate(bns)})
    initial = {name: v.numpy().copy() for name, v in watch.items()}
    snapshot = Snapshot(watch)
    switch = catdog.FineTuneSwitch(2, fine_tune_at=100, learning_rate=1e-3, verbose=0)
    history = model.fit(x, y, epochs=4, batch_size=8, callbacks=[switch, snapshot], verbose=0)
    return model, initial, snapshot.epochs, history


def test_trainable_set_grows_exactly_at_the_switch_epoch(two_stage_fit):
    _, _, epochs, _ = two_stage_fit
    sizes = [len(e["trainable"]) for e in epochs]
    assert sizes[0] == sizes[1] == 2
    assert sizes[2] == sizes[3] > 2
    assert epochs[0]["trainable"] < epochs[2]["trainable"]


def test_learning_rate_drops_at_the_switch(two_stage_fit):
    _, _, epochs, history = two_stage_fit
    assert [e["lr"] for e in epochs] == pytest.approx([1e-2, 1e-2, 1e-3, 1e-3])
    assert history.history["stage"] == [1, 1, 2, 2]
    assert history.history["learning_rate"] == pytest.approx([1e-2, 1e-2, 1e-3, 1e-3])


def test_unfrozen_backbone_weights_change_only_after_the_switch(two_stage_fit):
    _, initial, epochs, _ = two_stage_fit
    top = [e["values"]["top_conv"] for e in epochs]
    np.testing.assert_array_equal(top[0], initial["top_conv"])
    np.testing.assert_array_equal(top[1], initial["top_conv"])
    step = np.abs(top[1]).mean() * 1e-4  # a real update, not float noise
    assert np.abs(top[2] - top[1]).max() > step
    assert np.abs(top[3] - top[2]).max() > step


def test_frozen_weights_and_batchnorm_statistics_never_change(two_stage_fit):
    _, initial, epochs, _ = two_stage_fit
    for name, start in initial.items():
        if name == "top_conv":
            continue
        for epoch in epochs:
            np.testing.assert_array_equal(epoch["values"][name], start, err_msg=name)


def test_optimizer_is_rebuilt_for_the_new_variables(two_stage_fit):
    model, _, _, _ = two_stage_fit
    # Adam keeps two slots per trainable variable, plus iterations and lr.
    slots = [v for v in model.optimizer.variables if v.path.split("/")[-1] not in ("iteration", "learning_rate")]
    assert len(slots) == 2 * len(model.trainable_variables)
    assert int(model.optimizer.iterations.numpy()) == 4  # 2 epochs x 2 steps in stage 2


def test_stage_follows_the_epoch_when_resuming_past_the_switch():
    model = tiny_model(augmentation=False)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x = np.zeros((8, 32, 32, 3), "uint8")
    y = np.ones((8, 1), "float32")
    switch = catdog.FineTuneSwitch(2, verbose=0)
    history = model.fit(x, y, epochs=4, initial_epoch=3, batch_size=8, callbacks=[switch], verbose=0)
    assert model.stage == 2
    assert history.history["stage"] == [2]
    assert switch.stage_for_epoch(1) == 1 and switch.stage_for_epoch(2) == 2


def test_custom_stage_two_optimizer_is_used():
    model = tiny_model(augmentation=False)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x = np.zeros((8, 32, 32, 3), "uint8")
    y = np.ones((8, 1), "float32")
    sgd = keras.optimizers.SGD(learning_rate=3e-3, momentum=0.9)
    model.fit(x, y, epochs=2, batch_size=8, callbacks=[catdog.FineTuneSwitch(1, optimizer=sgd, verbose=0)], verbose=0)
    assert model.optimizer is sgd
    assert int(sgd.iterations.numpy()) == 1


def test_augmentation_starts_exactly_at_the_switch_inside_one_fit(monkeypatch):
    """The default model augments only in stage 2: the switch's rebuilt train
    function is what turns it on, within the same fit()."""
    calls = []
    real_call = catdog.ImageAugmentation.call

    def counting_call(self, images, training=None):
        calls.append(bool(training))
        return real_call(self, images, training=training)

    monkeypatch.setattr(catdog.ImageAugmentation, "call", counting_call)

    class TrainingCallsAt(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.counts = []

        def on_epoch_end(self, epoch, logs=None):
            self.counts.append(sum(calls))

    keras.utils.set_random_seed(0)
    model = tiny_model()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8, 32, 32, 3)).astype("uint8")
    y = rng.integers(0, 2, (8, 1)).astype("float32")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    counts = TrainingCallsAt()
    switch = catdog.FineTuneSwitch(2, verbose=0)
    model.fit(x, y, epochs=4, batch_size=4, callbacks=[switch, counts], verbose=0)
    assert counts.counts[0] == counts.counts[1] == 0
    assert counts.counts[2] > 0


def test_a_negative_switch_epoch_is_a_config_error_naming_the_field():
    with pytest.raises(catdog.ConfigError, match="switch_epoch must be >= 0, got -1") as raised:
        catdog.FineTuneSwitch(switch_epoch=-1)
    assert raised.value.field == "switch_epoch"
