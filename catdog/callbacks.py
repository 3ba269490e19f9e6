"""Keras callbacks that carry the two-stage recipe inside one `fit()`."""

import keras

from catdog.finetune import (  # noqa: F401  (re-exported: their home before catdog.finetune)
    DEFAULT_FINE_TUNE_LEARNING_RATE,
    BaseFineTuning,
    current_learning_rate,
    default_cut,
    make_optimizer,
    replace_optimizer,
    strategy_scope,
)
from catdog.errors import ConfigError
from catdog.model import FINE_TUNE, HEAD_ONLY


@keras.saving.register_keras_serializable(package="catdog")
class FineTuneSwitch(BaseFineTuning):
    """Switches stage 1 (frozen backbone) to stage 2 (fine-tuning) mid-`fit()`.

    At the start of epoch `switch_epoch` it unfreezes the backbone from
    `fine_tune_at` (BatchNorm layers stay frozen), moves training to the
    fine-tuning optimizer, and rebuilds the optimizer variables and the train
    function. Keras needs both: flipping `trainable` alone leaves the
    compiled train step updating the old variables. Before `switch_epoch` the
    backbone is frozen (a model compiled with it trainable gets a fresh copy
    of its optimizer for the head alone). The stage is a function of the
    epoch, so a run resumed with `fit(initial_epoch=...)` lands in the right
    stage.

    Works on any compiled `keras.Model` (Functional, Sequential,
    subclassed): name its backbone with `backbone=` (a layer or its name)
    unless the model has a `backbone` attribute, as catdog's classifiers do.
    It adds `stage` and `learning_rate` to each epoch's logs, so one
    `History` tells the stages apart. See `BaseFineTuning` for other
    policies.

    Args:
        switch_epoch: First epoch (0-based) of stage 2.
        fine_tune_at: First backbone layer to train: an index, a layer name,
            or a fraction of the backbone's layers (0.7: the top 30% train).
            Defaults to `None`: the model's own `fine_tune_at` (catdog's
            classifiers), else the default of a known `keras.applications`
            backbone.
        learning_rate: Learning rate of the default stage-2 optimizer (Adam).
            Defaults to `1e-5`, low, so the pre-trained features shift gently.
        optimizer: A Keras optimizer (or a zero-argument callable returning
            one) to use in stage 2 instead of `Adam(learning_rate)`. Defaults
            to `None`.
        backbone: The backbone layer or its name. Defaults to `None`:
            `model.backbone`.
        verbose: 1 prints a line at the switch. Defaults to `1`.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> import catdog
    >>> backbone = keras.Sequential(
    ...     [keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(8)], name="backbone")
    >>> model = keras.Sequential([backbone, keras.layers.Dense(1, activation="sigmoid")])
    >>> model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    >>> switch = catdog.FineTuneSwitch(
    ...     switch_epoch=2, fine_tune_at=1, backbone="backbone", verbose=0)
    >>> history = model.fit(np.ones((8, 4)), np.ones((8, 1)), epochs=3, verbose=0,
    ...                     callbacks=[switch])
    >>> history.history["stage"]
    [1, 1, 2]
    >>> [round(rate, 8) for rate in history.history["learning_rate"]]
    [0.001, 0.001, 1e-05]
    >>> [layer.trainable for layer in backbone.layers]
    [False, True]
    """

    def __init__(
        self,
        switch_epoch,
        fine_tune_at=None,
        learning_rate=DEFAULT_FINE_TUNE_LEARNING_RATE,
        optimizer=None,
        backbone=None,
        verbose=1,
    ):
        super().__init__(backbone=backbone, verbose=verbose)
        if int(switch_epoch) < 0:
            raise ConfigError(f"switch_epoch must be >= 0, got {switch_epoch}", field="switch_epoch")
        self.switch_epoch = int(switch_epoch)
        self.fine_tune_at = fine_tune_at
        self.learning_rate = learning_rate
        self.optimizer = optimizer

    def stage_for_epoch(self, epoch):
        return FINE_TUNE if epoch >= self.switch_epoch else HEAD_ONLY

    # policy
    def cut_for_epoch(self, epoch):
        if self.stage_for_epoch(epoch) == HEAD_ONLY:
            return None
        if self.fine_tune_at is not None:
            return self.fine_tune_at
        return default_cut(self.model, self.backbone_of(self.model))

    def optimizer_for_epoch(self, epoch, model):
        return make_optimizer(self.optimizer, self.learning_rate)

    def switch(self, epoch=None):
        """Unfreeze and move to the stage-2 optimizer now (whatever the epoch)."""
        return self.apply(self.switch_epoch if epoch is None else max(epoch, self.switch_epoch))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "switch_epoch": self.switch_epoch,
                "fine_tune_at": self.fine_tune_at,
                "learning_rate": self.learning_rate,
            }
        )
        return config
