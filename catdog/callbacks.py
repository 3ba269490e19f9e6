"""Keras callbacks that carry the two-stage recipe inside one `fit()`."""

import contextlib

import keras
from keras import ops

from catdog.model import FINE_TUNE, HEAD_ONLY

from catdog.defaults import DEFAULT_FINE_TUNE_LEARNING_RATE


class FineTuneSwitch(keras.callbacks.Callback):
    """Switches stage 1 (frozen backbone) to stage 2 (fine-tuning) mid-`fit()`.

    At the start of epoch `switch_epoch` it unfreezes the backbone from
    `fine_tune_at`, moves training to the fine-tuning optimizer, and rebuilds
    the optimizer variables and the train function. Keras needs both: flipping
    `trainable` alone leaves the compiled train step updating the old
    variables. The stage is a function of the epoch, so a run resumed with
    `fit(initial_epoch=...)` lands in the right stage.

    The model must offer `stage` and `unfreeze_backbone(from_layer)`, as
    `CatDogClassifier` does. It adds `stage` and `learning_rate` to each
    epoch's logs, so one `History` tells the stages apart.

    Args:
        switch_epoch: First epoch (0-based) of stage 2.
        fine_tune_at: First backbone layer to train (index or name); `None`
            keeps the model's own `fine_tune_at`.
        learning_rate: Learning rate of the default stage-2 optimizer (Adam).
        optimizer: A Keras optimizer (or a zero-argument callable returning
            one) to use in stage 2 instead of `Adam(learning_rate)`.
        verbose: 1 prints a line at the switch.
    """

    def __init__(
        self,
        switch_epoch,
        fine_tune_at=None,
        learning_rate=DEFAULT_FINE_TUNE_LEARNING_RATE,
        optimizer=None,
        verbose=1,
    ):
        super().__init__()
        if int(switch_epoch) < 0:
            raise ValueError(f"switch_epoch must be >= 0, got {switch_epoch}")
        self.switch_epoch = int(switch_epoch)
        self.fine_tune_at = fine_tune_at
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.verbose = verbose

    def stage_for_epoch(self, epoch):
        return FINE_TUNE if epoch >= self.switch_epoch else HEAD_ONLY

    def on_epoch_begin(self, epoch, logs=None):
        if self.stage_for_epoch(epoch) == FINE_TUNE and self.model.stage != FINE_TUNE:
            self.switch(epoch)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["stage"] = self.model.stage
            logs["learning_rate"] = current_learning_rate(self.model.optimizer)

    def switch(self, epoch=None):
        """Unfreeze and move to the stage-2 optimizer now."""
        # JAX's fit() keeps the training state outside the variables during an
        # epoch; write it back before the trainable set changes. Doing so also
        # makes fit() re-read the (new) state at its next step. At an epoch
        # start, where the switch normally happens, this is a no-op.
        if hasattr(self.model, "jax_state_sync"):
            self.model.jax_state_sync()
        self.model.unfreeze_backbone(self.fine_tune_at)
        # Under tf.distribute an optimizer belongs to the strategy it was made
        # in (its iteration counter is created in __init__): make it there.
        with strategy_scope(self.model):
            optimizer = self._fine_tune_optimizer()
        replace_optimizer(self.model, optimizer)
        # A test function traced in stage 1 may have read stage-1 state (the
        # feature cache); validation in stage 2 gets its own.
        self.model.make_test_function(force=True)
        if self.verbose:
            trainable = len(self.model.trainable_variables)
            print(
                f"\nFineTuneSwitch: epoch {epoch if epoch is not None else '-'}: "
                f"stage 2, backbone layers {self.model.fine_tune_at}+ trainable "
                f"({trainable} trainable variables), learning rate "
                f"{current_learning_rate(self.model.optimizer):.2g}"
            )

    def _fine_tune_optimizer(self):
        if self.optimizer is None:
            return keras.optimizers.Adam(learning_rate=self.learning_rate)
        if isinstance(self.optimizer, keras.optimizers.Optimizer):
            return self.optimizer
        if callable(self.optimizer):
            return self.optimizer()
        return keras.optimizers.get(self.optimizer)

    def get_config(self):
        return {
            "switch_epoch": self.switch_epoch,
            "fine_tune_at": self.fine_tune_at,
            "learning_rate": self.learning_rate,
            "verbose": self.verbose,
        }


def replace_optimizer(model, optimizer):
    """Make a compiled model train its current trainable variables with `optimizer`.

    Builds the optimizer's slots for exactly the trainable variables (inside
    the model's tf.distribute strategy, if any), wraps it for loss scaling
    under mixed precision as `compile()` would, and forces a new train
    function. Under a strategy, create `optimizer` inside its scope too.
    """
    with strategy_scope(model):
        if model.dtype_policy.name == "mixed_float16" and not isinstance(
            optimizer, keras.optimizers.LossScaleOptimizer
        ):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
    model.optimizer = optimizer
    # On JAX, fit() reads the variables' values into its state at the start
    # of each epoch (after on_epoch_begin), so a switch made there is seen by
    # the next step; under keras.distribution the new slots get their layout
    # from the distribution when they are built here.
    model.make_train_function(force=True)


def strategy_scope(model):
    """The model's tf.distribute strategy scope (TensorFlow), else a no-op."""
    strategy = getattr(model, "distribute_strategy", None)
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def current_learning_rate(optimizer):
    """The learning rate the optimizer applies now, as a Python float."""
    if optimizer is None:
        return float("nan")
    return float(ops.convert_to_numpy(optimizer.learning_rate))
