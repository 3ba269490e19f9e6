"""Fine-tuning a backbone inside any compiled Keras model: mechanism and policy apart.

As in Lightning's `BaseFinetuning`, the mechanism is a few plain functions
(`freeze`, `unfreeze_from`, `replace_optimizer`) and the policy a callback
whose hooks a subclass overrides (`BaseFineTuning`): which backbone layers
train at each epoch (`cut_for_epoch`) and with what optimizer
(`optimizer_for_epoch`). The callback turns a change of policy into what
Keras needs to see it: new trainable flags, an optimizer built for exactly
the new trainable variables (inside the model's tf.distribute scope), and
new train and test functions; on JAX the training state is written back to
the variables first. Flipping `trainable` in a callback without that
silently does nothing.

BatchNormalization layers of the backbone never train. Inside a Functional
model, `base(x, training=False)` is not honoured once the base is unfrozen:
fit() calls the whole graph with `training=True`. A BatchNormalization layer
with `trainable=False` runs in inference mode whatever `training` says, so
keeping them frozen is what keeps their moving statistics (ImageNet's)
intact.
"""

import contextlib

import keras
from keras import ops

from catdog.errors import ConfigError

#: Stage-2 learning rate (Adam): low, so ImageNet features shift gently.
DEFAULT_FINE_TUNE_LEARNING_RATE = 1e-5


# --- mechanism -------------------------------------------------------------


def sublayers(layer):
    """`layer` and every layer nested in it, depth first."""
    return list(layer._flatten_layers(include_self=True, recursive=True))


def is_batchnorm(layer):
    return isinstance(layer, keras.layers.BatchNormalization)


def set_trainable(layer, value):
    """`layer.trainable = value` for `layer` and every layer nested in it.

    Setting it on the outer layer alone is not enough: Keras passes the flag
    on to nested layers only when the outer layer's own flag changes, so
    `backbone.trainable = True` on an already trainable backbone leaves
    frozen layers inside it frozen.
    """
    for sub in sublayers(layer):
        sub.trainable = value


def freeze(layer):
    """Make nothing in `layer` train, nested layers included.

    Setting `layer.trainable = False` on the outer layer alone can leave
    inner layers as they were (Keras passes the flag on only when the outer
    flag changes); this sets every one.

    Args:
        layer: A Keras layer or model, e.g. a backbone.

    Example:

    >>> import keras
    >>> import catdog
    >>> backbone = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3)])
    >>> catdog.freeze(backbone)
    >>> backbone.trainable, len(backbone.trainable_weights), len(backbone.weights)
    (False, 0, 2)
    """
    set_trainable(layer, False)


def resolve_cut(backbone, cut):
    """Index in `backbone.layers` of the first layer that trains.

    Args:
        backbone: A model (or a layer with `.layers`).
        cut: A layer index (negative counts from the end), a layer name, or
            a float in (0, 1): the cut's position as a fraction of the layers
            (0.7: the top 30% train).
    """
    layers = _layers_of(backbone)
    if isinstance(cut, str) and not cut.lstrip("-").isdigit():
        for index, layer in enumerate(layers):
            if layer.name == cut:
                return index
        raise ConfigError(f"the backbone {backbone.name!r} has no layer named {cut!r}")
    if isinstance(cut, float):
        if not 0.0 < cut < 1.0:
            raise ConfigError(f"a fraction cut must be between 0 and 1, got {cut}")
        return min(int(round(cut * len(layers))), len(layers) - 1)
    index = int(cut)
    if index < 0:
        index += len(layers)
    if not 0 <= index < len(layers):
        raise ConfigError(f"fine_tune_at must be a layer index in 0..{len(layers) - 1}, got {cut}")
    return index


def unfreeze_from(backbone, cut, train_batchnorm=False):
    """Make backbone layers from `cut` on train; those below and every BatchNorm don't.

    Stage 2's trainable set. BatchNormalization layers stay frozen because a
    frozen one runs in inference mode whatever `training` says, which keeps
    the pre-trained moving statistics intact on a small dataset.

    Args:
        backbone: A model (or a layer with `.layers`).
        cut: The first layer that trains: an index into `backbone.layers`
            (negative counts from the end), a layer name, or a float in
            (0, 1), the cut's position as a fraction of the layers (0.7: the
            top 30% train).
        train_batchnorm: Let BatchNormalization layers above the cut train
            too. Defaults to `False`.

    Returns:
        The cut as an index into `backbone.layers`.

    Raises:
        ConfigError: `cut` names no layer or is out of range.

    Example:

    >>> import keras
    >>> import catdog
    >>> backbone = keras.Sequential([
    ...     keras.Input((8, 8, 3)),
    ...     keras.layers.Conv2D(4, 3, name="conv1"),
    ...     keras.layers.BatchNormalization(name="bn1"),
    ...     keras.layers.Conv2D(4, 3, name="conv2"),
    ...     keras.layers.BatchNormalization(name="bn2"),
    ... ])
    >>> catdog.unfreeze_from(backbone, "conv2")
    2
    >>> [(layer.name, layer.trainable) for layer in backbone.layers]
    [('conv1', False), ('bn1', False), ('conv2', True), ('bn2', False)]
    """
    index = resolve_cut(backbone, cut)
    set_trainable(backbone, True)
    for position, layer in enumerate(_layers_of(backbone)):
        if position < index:
            set_trainable(layer, False)
    if not train_batchnorm:
        for layer in sublayers(backbone):
            if is_batchnorm(layer):
                layer.trainable = False
    return index


def trainable_state(backbone):
    """The backbone's trainable flags, layer by layer (to see whether a policy changed them)."""
    return (bool(backbone.trainable), tuple(bool(layer.trainable) for layer in sublayers(backbone)))


def expected_state(backbone, cut):
    """`trainable_state` after `freeze` (cut None) or `unfreeze_from(backbone, cut)`."""
    everything = sublayers(backbone)
    if cut is None:
        return (False, tuple(False for _ in everything))
    frozen = {id(layer) for layer in everything if is_batchnorm(layer)}
    for layer in _layers_of(backbone)[: resolve_cut(backbone, cut)]:
        frozen.update(id(sub) for sub in sublayers(layer))
    return (True, tuple(layer is backbone or id(layer) not in frozen for layer in everything))


def replace_optimizer(model, optimizer):
    """Make a compiled model train its current trainable variables with `optimizer`.

    Changing `trainable` after `fit()` has built its train function changes
    nothing by itself: the compiled step keeps updating the old variables
    with the old optimizer's slots. This builds the optimizer's slots for
    exactly the trainable variables (inside the model's tf.distribute
    strategy, if any), wraps it for loss scaling under mixed precision as
    `compile()` would, and forces a new train function. Under a strategy,
    create `optimizer` inside its scope too.

    Args:
        model: A compiled `keras.Model`.
        optimizer: A Keras optimizer instance, not yet built.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> import catdog
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="body"),
    ...                           keras.layers.Dense(1, name="head")])
    >>> model.get_layer("body").trainable = False
    >>> model.compile(optimizer="adam", loss="mse")
    >>> x, y = np.ones((8, 4)), np.ones((8, 1))
    >>> _ = model.fit(x, y, verbose=0)  # the head trains
    >>> model.get_layer("body").trainable = True
    >>> catdog.replace_optimizer(model, keras.optimizers.SGD(0.1))
    >>> before = model.get_layer("body").get_weights()[0]
    >>> _ = model.fit(x, y, verbose=0)  # the body trains too, with SGD
    >>> bool(np.array_equal(before, model.get_layer("body").get_weights()[0]))
    False
    >>> type(model.optimizer).__name__
    'SGD'
    """
    with strategy_scope(model):
        if model.dtype_policy.name == "mixed_float16" and not isinstance(
            optimizer, keras.optimizers.LossScaleOptimizer
        ):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        if model.built:  # else Keras builds both at the first step
            optimizer.build(model.trainable_variables)
    model.optimizer = optimizer
    # On JAX, fit() reads the variables' values into its state at the start
    # of each epoch (after on_epoch_begin), so a switch made there is seen by
    # the next step; under keras.distribution the new slots get their layout
    # from the distribution when they are built here.
    model.make_train_function(force=True)


def fresh_copy(optimizer):
    """A new, unbuilt optimizer with the same settings (no slots, iteration 0).

    One not built yet is returned as it is: Keras builds it at the first step.
    """
    if not optimizer.built:
        return optimizer
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        optimizer = optimizer.inner_optimizer
    return optimizer.__class__.from_config(optimizer.get_config())


def strategy_scope(model):
    """The model's tf.distribute strategy scope (TensorFlow), else a no-op."""
    strategy = getattr(model, "distribute_strategy", None)
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def current_learning_rate(optimizer):
    """The learning rate the optimizer applies now, as a Python float."""
    if optimizer is None:
        return float("nan")
    return float(ops.convert_to_numpy(optimizer.learning_rate))


def find_backbone(model, backbone=None):
    """The backbone layer of `model`: `backbone` itself, the layer of that name, or `model.backbone`."""
    if backbone is None:
        found = getattr(model, "backbone", None)
        if found is None:
            raise ConfigError(
                f"tell the callback which layer of {type(model).__name__} {model.name!r} is the "
                "backbone: backbone=LAYER or backbone='layer name'"
            )
        return found
    if isinstance(backbone, str):
        try:
            return model.get_layer(backbone)
        except ValueError:
            names = ", ".join(layer.name for layer in model.layers)
            raise ConfigError(f"the model has no layer named {backbone!r} (its layers: {names})") from None
    return backbone


def default_cut(model, backbone):
    """Where to cut when not told: the model's `fine_tune_at`, else the backbone's default."""
    if getattr(model, "fine_tune_at", None) is not None:
        return model.fine_tune_at
    from catdog.backbones import default_fine_tune_at

    cut = default_fine_tune_at(backbone)
    if cut is None:
        raise ConfigError(
            f"say where to cut the backbone {backbone.name!r}: fine_tune_at=INDEX, 'layer name' or a fraction"
        )
    return cut


def _layers_of(backbone):
    layers = getattr(backbone, "layers", None)
    if not layers:
        raise ConfigError(f"the backbone {getattr(backbone, 'name', backbone)!r} has no layers to cut between")
    return layers


# --- policy ----------------------------------------------------------------


class BaseFineTuning(keras.callbacks.Callback):
    """Applies a fine-tuning policy to any compiled `keras.Model`, epoch by epoch.

    The base of `FineTuneSwitch` and `GradualUnfreezing`: subclass it for
    another policy by overriding its hooks:

    - `cut_for_epoch(epoch)`: None keeps the backbone frozen; otherwise the
      first backbone layer that trains in that epoch (an index, a layer name
      or a fraction, as `unfreeze_from` takes).
    - `optimizer_for_epoch(epoch, model)`: the optimizer to train with from
      an epoch where the trainable layers change and part of the backbone
      trains.
    - `frozen_optimizer(model)`: the optimizer when the backbone gets frozen
      (default: a fresh copy of the model's, for the head alone).

    At the start of each epoch the callback asks the policy and, only when
    the trainable flags it implies differ from the model's, applies them and
    calls `replace_optimizer`: flipping `trainable` in a callback without
    that silently does nothing. The state follows from the epoch, so a run
    resumed from a saved model lands in the right one and keeps its
    optimizer state. Works on Functional, Sequential and subclassed models,
    on TensorFlow (a tf.distribute scope included) and JAX. catdog's own
    classifiers keep their `stage` in step (their `freeze_backbone` and
    `unfreeze_backbone` are used).

    Adds `stage` (1: backbone frozen, 2: fine-tuning) and `learning_rate` to
    each epoch's logs, so they land in the History and in `history.json`.

    Args:
        backbone: The backbone layer, or its name in the model. Defaults to
            `None`: the model's `backbone` attribute.
        verbose: 1 prints a line when the trainable layers change. Defaults to
            `1`.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> import catdog
    >>> class UnfreezeAllAt(catdog.BaseFineTuning):
    ...     # From `epoch` on the whole backbone trains, with SGD.
    ...     def __init__(self, epoch, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.epoch = epoch
    ...     def cut_for_epoch(self, epoch):
    ...         return 0 if epoch >= self.epoch else None
    ...     def optimizer_for_epoch(self, epoch, model):
    ...         return keras.optimizers.SGD(1e-3)
    >>> backbone = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8)], name="backbone")
    >>> model = keras.Sequential([backbone, keras.layers.Dense(1, activation="sigmoid")])
    >>> model.compile(optimizer="adam", loss="binary_crossentropy")
    >>> history = model.fit(np.ones((8, 4)), np.ones((8, 1)), epochs=3, verbose=0,
    ...                     callbacks=[UnfreezeAllAt(2, backbone="backbone", verbose=0)])
    >>> history.history["stage"], type(model.optimizer).__name__
    ([1, 1, 2], 'SGD')
    """

    def __init__(self, backbone=None, verbose=1):
        super().__init__()
        self.backbone = backbone
        self.verbose = verbose

    # policy hooks
    def cut_for_epoch(self, epoch):
        raise NotImplementedError

    def optimizer_for_epoch(self, epoch, model):
        raise NotImplementedError

    def frozen_optimizer(self, model):
        return fresh_copy(model.optimizer)

    # mechanism
    def backbone_of(self, model):
        return find_backbone(model, self.backbone)

    def stage(self, model):
        """1 while the backbone is frozen, 2 while (part of) it trains."""
        if hasattr(model, "stage"):
            return model.stage
        backbone = self.backbone_of(model)
        return 2 if backbone.trainable and any(
            layer.trainable and layer.trainable_weights for layer in _layers_of(backbone)
        ) else 1

    def on_epoch_begin(self, epoch, logs=None):
        self.apply(epoch)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["stage"] = self.stage(self.model)
            logs["learning_rate"] = current_learning_rate(self.model.optimizer)

    def apply(self, epoch):
        """Make the model's trainable layers those of the policy at `epoch`; True if they changed."""
        model = self.model
        backbone = self.backbone_of(model)
        cut = self.cut_for_epoch(epoch)
        before = trainable_state(backbone)
        if cut is not None:
            cut = resolve_cut(backbone, cut)
        if before == self._state_for(backbone, cut):
            return False
        # JAX's fit() keeps the training state outside the variables during an
        # epoch; write it back before the trainable set changes. Doing so also
        # makes fit() re-read the (new) state at its next step. At an epoch
        # start, where the switch normally happens, this is a no-op.
        if hasattr(model, "jax_state_sync"):
            model.jax_state_sync()
        self.apply_cut(model, backbone, cut)
        # Under tf.distribute an optimizer belongs to the strategy it was made
        # in (its iteration counter is created in __init__): make it there.
        with strategy_scope(model):
            optimizer = self.frozen_optimizer(model) if cut is None else self.optimizer_for_epoch(epoch, model)
        replace_optimizer(model, optimizer)
        # A test function traced before may have read the old state (catdog's
        # stage-1 feature cache); validation gets its own.
        model.make_test_function(force=True)
        if self.verbose:
            where = "backbone frozen" if cut is None else f"backbone layers {cut}+ trainable"
            print(
                f"\n{type(self).__name__}: epoch {epoch}: stage {self.stage(model)}, {where} "
                f"({len(model.trainable_variables)} trainable variables), learning rate "
                f"{current_learning_rate(model.optimizer):.2g}"
            )
        return True

    def apply_cut(self, model, backbone, cut):
        """Freeze the backbone (cut None) or unfreeze it from `cut`, BatchNorm frozen."""
        if cut is None:
            if hasattr(model, "freeze_backbone"):
                model.freeze_backbone()
            else:
                freeze(backbone)
        elif hasattr(model, "unfreeze_backbone"):
            model.unfreeze_backbone(cut)
        else:
            unfreeze_from(backbone, cut)

    @staticmethod
    def _state_for(backbone, cut):
        """The trainable flags `apply_cut` would leave (computed, nothing changed)."""
        return expected_state(backbone, cut)

    def get_config(self):
        return {
            "backbone": self.backbone if isinstance(self.backbone, (str, type(None))) else self.backbone.name,
            "verbose": self.verbose,
        }


def make_optimizer(optimizer, learning_rate):
    """An optimizer from a spec: None (Adam at `learning_rate`), an instance, a factory, or a name."""
    if optimizer is None:
        return keras.optimizers.Adam(learning_rate=learning_rate)
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer
    if callable(optimizer):
        return optimizer()
    return keras.optimizers.get(optimizer)


@keras.saving.register_keras_serializable(package="catdog")
class GradualUnfreezing(BaseFineTuning):
    """Unfreeze the backbone from the top, `layers_per_epoch` more layers each epoch.

    ULMFiT's gradual unfreezing: the backbone stays frozen until
    `start_epoch`, then its top `layers_per_epoch` layers train, and each
    later epoch the cut moves `layers_per_epoch` layers down, never below
    `lowest`. Going down a little at a time changes the most general (lowest)
    features last, so less of what the backbone learned is forgotten. Each
    time the cut moves, a fresh optimizer trains the new set.
    BatchNormalization layers never train.

    Args:
        start_epoch: First epoch (0-based) with part of the backbone
            training.
        layers_per_epoch: How many more backbone layers train each epoch (an
            int); to move by whole blocks, pass `block_starts` instead.
            Defaults to `10`.
        block_starts: Layer names or indices, in order, where the backbone's
            blocks begin: each epoch one more block (from the top) trains.
            Defaults to `None` (move by `layers_per_epoch`).
        lowest: The lowest layer that ever trains: an index, a name or a
            fraction, as `unfreeze_from` takes. Defaults to `0`.
        learning_rate: Learning rate of the default optimizer (Adam). Defaults
            to `1e-5`.
        optimizer: A Keras optimizer to use instead of Adam. An instance is
            used once, so pass a factory such as
            `lambda: keras.optimizers.SGD(1e-4)` to get one per move. Defaults
            to `None`.
        backbone: The backbone layer, or its name in the model. Defaults to
            `None`: the model's `backbone` attribute.
        verbose: 1 prints a line each time the cut moves. Defaults to `1`.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> import catdog
    >>> backbone = keras.Sequential(
    ...     [keras.Input((4,))] + [keras.layers.Dense(4) for _ in range(4)], name="backbone")
    >>> model = keras.Sequential([backbone, keras.layers.Dense(1, activation="sigmoid")])
    >>> model.compile(optimizer="adam", loss="binary_crossentropy")
    >>> unfreezing = catdog.GradualUnfreezing(
    ...     start_epoch=1, layers_per_epoch=1, backbone="backbone", verbose=0)
    >>> history = model.fit(np.ones((8, 4)), np.ones((8, 1)), epochs=3, verbose=0,
    ...                     callbacks=[unfreezing])
    >>> history.history["stage"]
    [1, 2, 2]
    >>> [layer.trainable for layer in backbone.layers]  # the top two after epoch 2
    [False, False, True, True]
    """

    def __init__(
        self,
        start_epoch,
        layers_per_epoch=10,
        block_starts=None,
        lowest=0,
        learning_rate=DEFAULT_FINE_TUNE_LEARNING_RATE,
        optimizer=None,
        backbone=None,
        verbose=1,
    ):
        super().__init__(backbone=backbone, verbose=verbose)
        if int(start_epoch) < 0 or int(layers_per_epoch) < 1:
            raise ConfigError("start_epoch must be >= 0 and layers_per_epoch >= 1")
        self.start_epoch = int(start_epoch)
        self.layers_per_epoch = int(layers_per_epoch)
        self.block_starts = list(block_starts) if block_starts is not None else None
        self.lowest = lowest
        self.learning_rate = learning_rate
        self.optimizer = optimizer

    def cut_for_epoch(self, epoch):
        if epoch < self.start_epoch:
            return None
        backbone = self.backbone_of(self.model)
        lowest = resolve_cut(backbone, self.lowest)
        moves = epoch - self.start_epoch + 1
        if self.block_starts is not None:
            starts = sorted(resolve_cut(backbone, start) for start in self.block_starts)
            cut = starts[max(len(starts) - moves, 0)]
        else:
            cut = len(_layers_of(backbone)) - moves * self.layers_per_epoch
        return max(cut, lowest)

    def optimizer_for_epoch(self, epoch, model):
        return make_optimizer(self.optimizer, self.learning_rate)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "start_epoch": self.start_epoch,
                "layers_per_epoch": self.layers_per_epoch,
                "block_starts": self.block_starts,
                "lowest": self.lowest,
                "learning_rate": self.learning_rate,
            }
        )
        return config
