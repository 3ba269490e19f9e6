"""The recipe: one `fit()` through both stages, one folder of artifacts."""

import contextlib
import dataclasses
import math
import os
import time
from dataclasses import dataclass

import keras

from catdog import artifacts, ownership
from catdog.training import distribute
from catdog.callbacks import FineTuneSwitch
from catdog.losses import SparseCategoricalCrossentropyWithSmoothing
from catdog.training.checkpoint import RunCheckpoint, restore_random_state, write_history
from catdog.training.run_folder import (
    CONFIG_FILE,
    CURVES_FILE,
    DATA_FILE,
    MODEL_FILE,
    SKIPPED_FILE,
    STATE_FILE,
    ResumePoint,
    prepare_run_dir,
    remove_checkpoints,
)
from catdog.training.config import TrainConfig
from catdog.data.sources import load_splits
from catdog.training.epoch_log import EpochLogLine
from catdog.training.feature_cache import StageOneFeatureCache
from catdog.errors import TrainingDiverged
from catdog.backbones import preprocessing_for
from catdog.model import CAT_DOG, CatDogClassifier, ImageClassifier, recipe_augmentation
from catdog.names import escape
from catdog.evaluation.figures import plot_training_curves
from catdog.training.run_report import write_run_report
from catdog.training.tensorboard_logs import StageTensorBoard



@dataclass
class TrainResult:
    """What `train` returns: the trained model, its history and where it is saved.

    Attributes:
        model: The trained classifier, in the stage it ended in.
        history: One dict per epoch (`epoch`, `stage`, `loss`, `accuracy`,
            `val_loss`, `val_accuracy`, `learning_rate`, `seconds`, ...), the
            epochs of an interrupted run included when it was resumed.
        run_dir: The run folder.
        data: What the data was: its source, and its image counts per split
            and class and of skipped files (as in `data.json`).
        seconds: Wall-clock time of this call.
        resumed_from: Epochs already done when this call began; `None` for a
            fresh run.
        is_chief: False on the processes of a multihost run that do not
            write the run folder.
    """

    model: object
    history: list
    run_dir: str
    data: dict
    seconds: float
    resumed_from: int | None = None  # epochs already done when this call began
    #: False on the processes of a multihost run that do not write the run folder.
    is_chief: bool = True

    @property
    def final(self):
        """The last epoch's record (`{}` when no epoch ran)."""
        return self.history[-1] if self.history else {}


def compile_for_stage_one(model, learning_rate, label_smoothing=0.0):
    """Compile a model for stage 1: Adam, cross-entropy and accuracy.

    Binary cross-entropy on the one sigmoid unit of a two-class model, sparse
    categorical cross-entropy (integer labels) on the softmax of more. It is
    what `train` compiles with; `FineTuneSwitch` later swaps the optimizer
    for stage 2 and keeps the loss.

    Args:
        model: A catdog classifier; a model without `num_classes` is
            compiled as a two-class one.
        learning_rate: Adam's learning rate (catdog's default is `1e-3`).
        label_smoothing: Spreads this much of each target evenly over the
            classes (two classes: pulls 0 and 1 towards 0.5 by it; more:
            `SparseCategoricalCrossentropyWithSmoothing`). Defaults to `0.0`.

    Returns:
        `model`, compiled.

    Example:

    >>> import catdog
    >>> model = catdog.CatDogClassifier(image_size=32, alpha=0.35, weights=None)
    >>> model = catdog.compile_for_stage_one(model, learning_rate=1e-3)
    >>> type(model.loss).__name__, round(float(model.optimizer.learning_rate), 6)
    ('BinaryCrossentropy', 0.001)
    """
    if getattr(model, "num_classes", 2) == 2:
        loss = keras.losses.BinaryCrossentropy(label_smoothing=float(label_smoothing))
        accuracy = keras.metrics.BinaryAccuracy(name="accuracy")
    else:
        if label_smoothing:
            loss = SparseCategoricalCrossentropyWithSmoothing(label_smoothing=float(label_smoothing))
        else:
            loss = keras.losses.SparseCategoricalCrossentropy()
        accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss=loss, metrics=[accuracy])
    return model


def train(config=None, callbacks=(), **overrides):
    """Run the two-stage recipe described by `config` and write its artifacts.

    One `fit()` trains the head on the frozen backbone (stage 1), then
    `FineTuneSwitch` unfreezes the top of the backbone (stage 2). The run
    folder gets `model.keras`, `history.json`, `history.csv`, `curves.png`,
    TensorBoard logs in `logs/`, `config.json` and `data.json` (plus
    `skipped.txt` when files were skipped), and the validation evaluation:
    `metrics.json`, its figures and `report.html`. While it runs it keeps the
    last epoch's checkpoint and `run_state.json`; calling `train` again with
    the same folder and settings resumes from the last completed epoch,
    exactly where the interrupted run was (`catdog.training.run_folder`).
    `config.seed` fixes everything random: two runs with the same seed and
    data give the same weights on CPU.

    Args:
        config: A `TrainConfig`. Defaults to `None`: `TrainConfig()` (TFDS
            `cats_vs_dogs`, ImageNet weights, 3 + 3 epochs).
        callbacks: More Keras callbacks for the `fit()`, after catdog's own.
            Defaults to `()`.
        **overrides: `TrainConfig` fields that replace those of `config`.

    Returns:
        A `TrainResult`: the trained model, the per-epoch history and the
        run folder.

    Raises:
        CatdogError: bad settings (`ConfigError`), unusable data
            (`DataError`), weights that cannot be had
            (`WeightsUnavailableError`), a run folder catdog did not make or
            cannot write, or a loss that became NaN (the last good checkpoint
            is kept). Each says in one line what to do.

    Example:

    >>> import catdog
    >>> config = catdog.TrainConfig(data="photos", out="runs/first", epochs=1,
    ...                             fine_tune_epochs=1, verbose=0)
    >>> config.total_epochs
    2
    >>> # photos/ holds cats/ and dogs/; a minute or more, even for a tiny model:
    >>> result = catdog.train(config)  # doctest: +SKIP
    >>> [record["stage"] for record in result.history]  # doctest: +SKIP
    [1, 2]
    >>> model = catdog.load_model(result.run_dir + "/model.keras")  # doctest: +SKIP
    """
    config = config or TrainConfig()
    if overrides:
        config = TrainConfig.from_dict({**config.to_dict(), **overrides})
    started = time.perf_counter()
    # Under --distribute multihost only process 0 (the chief) owns the run
    # folder; the others learn from it whether and where the run resumes.
    distributor = distribute.setup(config)
    with _run_folder_lock(config.out, distributor.is_chief):
        return _train(config, callbacks, distributor, started)


@contextlib.contextmanager
def _run_folder_lock(run_dir, chief):
    """The run folder, claimed and locked for the whole run (`--overwrite` included)."""
    if not chief:
        yield
        return
    ownership.claim_folder(run_dir, ownership.RUN)
    with ownership.FolderLock(run_dir):
        yield


def _train(config, callbacks, distributor, started):
    run_dir = config.out
    chief = distributor.is_chief
    verbose = config.verbose if chief else 0
    point = distributor.run_on_chief(lambda: _as_dict(prepare_run_dir(config)))
    resume_from = ResumePoint(**point) if point else None
    keras.utils.set_random_seed(config.seed)

    splits = load_splits(
        config.data,
        val_data=config.val_data,
        image_size=config.image_size,
        batch_size=config.batch_size,
        val_split=config.val_split,
        limit=config.limit,
        seed=config.seed,
        cache=config.cache,
    )
    if chief:
        artifacts.write_json(os.path.join(run_dir, CONFIG_FILE), config.to_dict())
        artifacts.write_json(os.path.join(run_dir, DATA_FILE), splits.summary())
    if splits.skipped and chief:
        artifacts.write_text(
            os.path.join(run_dir, SKIPPED_FILE),
            # one line per file: names escaped (catdog.names), so none can forge a line
            "".join(f"{escape(s.path)}\t{escape(s.reason)}\n" for s in splits.skipped),
        )
        if verbose:
            print(f"catdog: skipped {len(splits.skipped)} unusable files (see {os.path.join(run_dir, SKIPPED_FILE)})")

    records, initial_epoch = [], 0
    if resume_from is not None:
        model = distributor.load_checkpoint(resume_from.checkpoint)
        records, initial_epoch = (resume_from.records if chief else []), resume_from.epoch
        # Continue exactly where the interrupted run was: the augmentation and
        # dropout generators (the shuffle order follows from the epoch).
        restore_random_state(model, resume_from.random_state)
        if verbose:
            print(f"catdog: resuming {run_dir} after epoch {initial_epoch} (stage {model.stage})")
        if chief:
            _warn_if_data_changed(resume_from.previous_data, splits.summary())
    else:
        # Again: loading the data may have drawn from the global generators (TFDS
        # names its temporary folders with `random` when it prepares a data set),
        # and the new layers' initial weights and seeds must not depend on that.
        keras.utils.set_random_seed(config.seed)
        # cats vs dogs keeps its own class (and file) as it always had
        classifier = CatDogClassifier if tuple(splits.class_names) == CAT_DOG else ImageClassifier
        with distributor.scope():
            model = classifier(
                backbone=config.backbone,
                class_names=list(splits.class_names),
                image_size=config.image_size,
                alpha=config.alpha,
                weights=config.weights,
                dropout=config.dropout,
                augmentation=_seeded(config, preprocessing_for(config.backbone)),
                augment_stage_one=config.augment_stage_one,
                fine_tune_at=config.fine_tune_at,
                mixed_precision=config.mixed_precision,
            )
            compile_for_stage_one(model, config.learning_rate, config.label_smoothing)
    if verbose and distributor.name != distribute.NONE:
        print(f"catdog: training on {distributor.describe()}; global batch {config.batch_size}")

    switch_epoch = config.epochs
    recorder = RunCheckpoint(run_dir if chief else None, config.total_epochs, switch_epoch, records)
    train_data, steps_per_epoch = splits.train, None
    if splits.train_for_epochs is not None and distributor.name != distribute.MULTIHOST:
        # Epoch-keyed order makes resumed runs exact; multihost shards plain epochs.
        train_data = splits.train_for_epochs(initial_epoch, config.total_epochs)
        steps_per_epoch = splits.steps_per_epoch
    model.fit(
        distributor.distribute_dataset(train_data, splits.counts.get("train")),
        steps_per_epoch=steps_per_epoch,
        validation_data=distributor.distribute_dataset(splits.validation, splits.counts.get("validation")),
        epochs=config.total_epochs,
        initial_epoch=initial_epoch,
        callbacks=[
            FineTuneSwitch(
                switch_epoch,
                fine_tune_at=config.fine_tune_at,
                learning_rate=config.fine_tune_learning_rate,
                optimizer=_fine_tune_optimizer(config, splits),
                verbose=1 if verbose == 1 else 0,  # the epoch lines of verbose 2 show the stage
            ),
            # after the switch, so that it frees the cache at the switch epoch
            *_feature_cache(config, splits, verbose),
            recorder,
            # after the recorder: an epoch is logged once its checkpoint is committed
            *([StageTensorBoard(run_dir, switch_epoch, records)] if chief else []),
            *([EpochLogLine(config.total_epochs)] if verbose == 2 else []),
            *callbacks,
        ],
        shuffle=False,  # the pipeline shuffles, reproducibly
        verbose=1 if verbose == 1 else 0,
    )
    if recorder.diverged:
        last = recorder.last_checkpoint
        kept = (
            f"the last good checkpoint is kept: {last}"
            if last
            else "no epoch had completed, so there is no checkpoint"
        )
        raise TrainingDiverged(
            f"{recorder.diverged}; stopped, {kept}. "
            "Retry with a lower --lr or --fine-tune-lr (and --overwrite)"
        )

    if not chief:  # multihost: process 0 alone writes the run folder
        return TrainResult(
            model=model,
            history=recorder.records,
            run_dir=run_dir,
            data=splits.summary(),
            seconds=time.perf_counter() - started,
            is_chief=False,
        )

    distribute.save_model(model, os.path.join(run_dir, MODEL_FILE))
    write_history(run_dir, recorder.records, switch_epoch)
    plot_training_curves(recorder.records, os.path.join(run_dir, CURVES_FILE), switch_epoch)
    # metrics.json, the evaluation figures and report.html, on the validation data;
    # before the run counts as finished, so a kill here is resumed and redone.
    write_run_report(run_dir, model, splits, config, recorder.records, switch_epoch)
    artifacts.write_json(
        os.path.join(run_dir, STATE_FILE),
        {"completed_epochs": config.total_epochs, "total_epochs": config.total_epochs, "finished": True},
    )
    remove_checkpoints(run_dir)
    return TrainResult(
        model=model,
        history=recorder.records,
        run_dir=run_dir,
        data=splits.summary(),
        seconds=time.perf_counter() - started,
        resumed_from=resume_from.epoch if resume_from is not None else None,
    )


def _fine_tune_optimizer(config, splits):
    """None (FineTuneSwitch's constant-rate Adam), or Adam with a cosine decay
    from the stage-2 rate to 0 over the stage-2 steps."""
    if config.fine_tune_schedule == "constant":
        return None
    steps = splits.steps_per_epoch or math.ceil((splits.counts.get("train") or 1) / config.batch_size)

    def cosine_adam():
        schedule = keras.optimizers.schedules.CosineDecay(
            config.fine_tune_learning_rate, decay_steps=max(1, steps * config.fine_tune_epochs)
        )
        return keras.optimizers.Adam(learning_rate=schedule)

    return cosine_adam


def _feature_cache(config, splits, verbose):
    """Stage 1's feature cache, sized for every training and validation photo."""
    if not config.feature_cache:
        return []
    photos = sum(splits.counts.get(split) or 0 for split in ("train", "validation"))
    return [StageOneFeatureCache(capacity=photos or None, verbose=verbose)]


def _as_dict(point):
    """A `ResumePoint` as plain data, which a multihost chief can broadcast."""
    return dataclasses.asdict(point) if point is not None else None


def _seeded(config, mode):
    """The model's augmentation arguments, with the run's seed."""
    augmentation, seed = config.augmentation, config.seed
    if augmentation is True:
        return {"seed": seed, **(recipe_augmentation(mode) if config.colour_augmentation else {})}
    if isinstance(augmentation, dict):  # ImageAugmentation's arguments (benchmarks/recipes.py)
        return {"seed": seed, **augmentation}
    return augmentation


def _warn_if_data_changed(before, now):
    """A resumed run on other data is not the run that was interrupted: say so."""
    if before and before.get("counts") != now.get("counts"):
        print(
            f"catdog: warning: the data changed since this run started "
            f"({before.get('counts')} -> {now.get('counts')}); resuming anyway"
        )
