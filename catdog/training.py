"""The recipe: one `fit()` through both stages, one folder of artifacts."""

import os
import time
from dataclasses import dataclass

import keras

from catdog import artifacts, distribute
from catdog.callbacks import FineTuneSwitch
from catdog.checkpoint import (
    CHECKPOINT_FILE,
    STATE_FILE,
    RunCheckpoint,
    read_json,
    write_history,
)
from catdog.config import TrainConfig
from catdog.data.sources import load_splits
from catdog.errors import CatdogError, ConfigError
from catdog.loading import load_model
from catdog.model import CatDogClassifier
from catdog.plots import plot_training_curves

MODEL_FILE = "model.keras"


class TrainingDiverged(CatdogError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    model: object
    history: list
    run_dir: str
    data: dict
    seconds: float
    #: False on the processes of a multihost run that do not write the run folder.
    is_chief: bool = True

    @property
    def final(self):
        return self.history[-1] if self.history else {}


def compile_for_stage_one(model, learning_rate):
    """Adam + binary cross-entropy + accuracy: the stage-1 setup."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    return model


def train(config=None, callbacks=(), **overrides):
    """Run the two-stage recipe described by `config` and write its artifacts.

    The run folder gets `model.keras`, `history.json`, `curves.png`,
    `config.json` and `data.json` (plus `skipped.txt` when files were
    skipped). While it runs it keeps `checkpoint.keras` and `run_state.json`;
    calling `train` again with the same folder resumes from the last
    completed epoch.
    """
    config = config or TrainConfig()
    if overrides:
        config = TrainConfig.from_dict({**config.to_dict(), **overrides})
    run_dir = config.out
    started = time.perf_counter()
    # Under --distribute multihost only process 0 (the chief) owns the run
    # folder; the others learn from it whether and where the run resumes.
    distributor = distribute.setup(config)
    chief = distributor.is_chief
    verbose = config.verbose if chief else 0
    resume_from = distributor.run_on_chief(lambda: _prepare_run_dir(config))
    keras.utils.set_random_seed(config.seed)

    splits = load_splits(
        config.data,
        val_data=config.val_data,
        image_size=config.image_size,
        batch_size=config.batch_size,
        val_split=config.val_split,
        limit=config.limit,
        seed=config.seed,
    )
    if chief:
        artifacts.write_json(os.path.join(run_dir, "config.json"), config.to_dict())
        artifacts.write_json(os.path.join(run_dir, "data.json"), splits.summary())
    if splits.skipped and chief:
        artifacts.write_text(
            os.path.join(run_dir, "skipped.txt"),
            "".join(f"{s.path}\t{s.reason}\n" for s in splits.skipped),
        )
        if config.verbose:
            print(f"catdog: skipped {len(splits.skipped)} unusable files (see {run_dir}/skipped.txt)")

    records, initial_epoch = [], 0
    if resume_from is not None:
        model = distributor.load_checkpoint(os.path.join(run_dir, CHECKPOINT_FILE))
        records = (read_json(os.path.join(run_dir, "history.json")) or {}).get("epochs", []) if chief else []
        initial_epoch = resume_from
        records = [r for r in records if r["epoch"] < initial_epoch]
        if verbose:
            print(f"catdog: resuming {run_dir} after epoch {initial_epoch} (stage {model.stage})")
    else:
        with distributor.scope():
            model = CatDogClassifier(
                image_size=config.image_size,
                alpha=config.alpha,
                weights=config.weights,
                dropout=config.dropout,
                augmentation=config.augmentation,
                fine_tune_at=config.fine_tune_at,
            )
            compile_for_stage_one(model, config.learning_rate)
    if verbose and distributor.name != distribute.NONE:
        print(f"catdog: training on {distributor.describe()}; global batch {config.batch_size}")

    switch_epoch = config.epochs
    recorder = RunCheckpoint(run_dir if chief else None, config.total_epochs, switch_epoch, records)
    model.fit(
        distributor.distribute_dataset(splits.train, splits.counts.get("train")),
        validation_data=distributor.distribute_dataset(splits.validation, splits.counts.get("validation")),
        epochs=config.total_epochs,
        initial_epoch=initial_epoch,
        callbacks=[
            FineTuneSwitch(
                switch_epoch,
                fine_tune_at=config.fine_tune_at,
                learning_rate=config.fine_tune_learning_rate,
                verbose=verbose,
            ),
            recorder,
            *callbacks,
        ],
        shuffle=False,  # the pipeline shuffles, reproducibly
        verbose=verbose,
    )
    if recorder.diverged:
        raise TrainingDiverged(
            f"{recorder.diverged}; stopped. The last good checkpoint is "
            f"{os.path.join(run_dir, CHECKPOINT_FILE)} (lower --lr to retry)"
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

    artifacts.save_model(model, os.path.join(run_dir, MODEL_FILE))
    write_history(run_dir, recorder.records, switch_epoch)
    plot_training_curves(recorder.records, os.path.join(run_dir, "curves.png"), switch_epoch)
    artifacts.write_json(
        os.path.join(run_dir, STATE_FILE),
        {"completed_epochs": config.total_epochs, "total_epochs": config.total_epochs, "finished": True},
    )
    checkpoint = os.path.join(run_dir, CHECKPOINT_FILE)
    if os.path.exists(checkpoint):
        os.remove(checkpoint)
    return TrainResult(
        model=model,
        history=recorder.records,
        run_dir=run_dir,
        data=splits.summary(),
        seconds=time.perf_counter() - started,
    )


def _prepare_run_dir(config):
    """Create the run folder; return the epoch to resume from, or None.

    A folder holding a finished run is refused unless `overwrite`; one
    holding an unfinished run is resumed (if `resume`) or refused.
    """
    run_dir = config.out
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise ConfigError(f"--out {run_dir} exists and is not a folder")
    state = read_json(os.path.join(run_dir, STATE_FILE))
    has_run = state is not None or os.path.exists(os.path.join(run_dir, MODEL_FILE))
    if has_run and config.overwrite:
        for name in (MODEL_FILE, CHECKPOINT_FILE, STATE_FILE, "history.json", "curves.png", "skipped.txt"):
            path = os.path.join(run_dir, name)
            if os.path.exists(path):
                os.remove(path)
        has_run, state = False, None
    os.makedirs(run_dir, exist_ok=True)
    if not has_run:
        return None
    if state and state.get("finished") or state is None:
        raise ConfigError(
            f"{run_dir} already holds a finished run; pass --overwrite to replace it "
            "or choose another --out"
        )
    checkpoint = os.path.join(run_dir, CHECKPOINT_FILE)
    if not config.resume or not os.path.exists(checkpoint):
        raise ConfigError(
            f"{run_dir} holds an unfinished run; pass --overwrite to start over"
            + ("" if config.resume else " or --resume to continue it")
        )
    return int(state.get("completed_epochs", 0))
