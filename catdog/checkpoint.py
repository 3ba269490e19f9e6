"""Per-epoch checkpoints and history, so an interrupted run loses at most an epoch."""

import json
import math
import os
import time

import keras

from catdog import artifacts

CHECKPOINT_FILE = "checkpoint.keras"
HISTORY_FILE = "history.json"
STATE_FILE = "run_state.json"


class RunCheckpoint(keras.callbacks.Callback):
    """Saves the model, the history so far and the run state after each epoch.

    The checkpoint is a complete `.keras` file (weights, stage, optimizer
    state), written atomically, so resuming is `load_model` plus
    `fit(initial_epoch=...)`. A non-finite training loss stops the run before
    the next checkpoint, so the last good one survives.

    Args:
        run_dir: The run folder; `None` keeps the records but writes nothing.
        total_epochs: Epochs of both stages, for the run state.
        switch_epoch: First stage-2 epoch, recorded in the history.
        records: History records of epochs completed before a resume.
    """

    def __init__(self, run_dir, total_epochs, switch_epoch, records=()):
        super().__init__()
        self.run_dir = run_dir
        self.total_epochs = total_epochs
        self.switch_epoch = switch_epoch
        self.records = list(records)
        self.diverged = None
        self._epoch_started = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged = f"training loss became {float(loss)} at batch {batch}"
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged:
            return
        record = {"epoch": int(epoch)}
        record.update({key: _number(value) for key, value in (logs or {}).items()})
        record["seconds"] = round(time.perf_counter() - self._epoch_started, 3)
        if not math.isfinite(record.get("loss", 0.0)):
            self.diverged = f"training loss became {record['loss']} in epoch {epoch}"
            self.model.stop_training = True
            return
        self.records.append(record)
        if self.run_dir is None:  # a multihost process other than the chief
            return
        artifacts.save_model(self.model, os.path.join(self.run_dir, CHECKPOINT_FILE))
        write_history(self.run_dir, self.records, self.switch_epoch)
        artifacts.write_json(
            os.path.join(self.run_dir, STATE_FILE),
            {
                "completed_epochs": epoch + 1,
                "total_epochs": self.total_epochs,
                "finished": False,
            },
        )


def write_history(run_dir, records, switch_epoch):
    artifacts.write_json(
        os.path.join(run_dir, HISTORY_FILE),
        {"switch_epoch": switch_epoch, "epochs": records},
    )


def read_json(path, default=None):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return default


def _number(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return int(number) if number.is_integer() and abs(number) < 2**31 and isinstance(value, int) else number
