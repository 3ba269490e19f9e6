"""Per-epoch checkpoints and history, so an interrupted run loses at most an epoch.

After each epoch `RunCheckpoint` writes, in this order, each file atomically:
the checkpoint `checkpoint-epochN.keras` (N completed epochs), `history.json`,
then `run_state.json`, which names that checkpoint. The run state is the
commit point: a kill at any moment leaves it naming a complete checkpoint of
the epoch it records, and the history holds at least that many epochs. Only
then is the previous checkpoint deleted.
"""

import math
import os
import time

import keras
import numpy as np

from catdog import artifacts
from catdog.training.distribute import save_model
from catdog.training.history_csv import write_history_csv
from catdog.training.run_folder import HISTORY_FILE, STATE_FILE, checkpoint_name, read_json, remove_checkpoints

#: TEST HOOK (not for users): seconds to sleep after each epoch's checkpoint
#: is committed, so a test can kill a real `catdog train` at a known point.
TEST_PAUSE_ENV = "CATDOG_TEST_PAUSE_AFTER_EPOCH"


class RunCheckpoint(keras.callbacks.Callback):
    """Saves the model, the history so far and the run state after each epoch.

    The checkpoint is a complete `.keras` file (weights, stage, optimizer
    state); the run state adds the random generators' state of the model's
    augmentation and dropout layers, which `.keras` files do not hold, so a
    resumed run continues exactly as an uninterrupted one would. A non-finite
    training loss stops the run before the next checkpoint, so the last good
    one survives.

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
        self._epoch = None
        self._epoch_started = None

    @property
    def last_checkpoint(self):
        """Path of the newest committed checkpoint, or None."""
        state = read_json(os.path.join(self.run_dir, STATE_FILE)) or {}
        name = state.get("checkpoint")
        path = os.path.join(self.run_dir, name) if name else None
        return path if path and os.path.exists(path) else None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged = (
                f"training loss became {float(loss)} at batch {batch} of epoch {self._epoch}"
            )
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
        completed = epoch + 1
        name = checkpoint_name(completed)
        save_model(self.model, os.path.join(self.run_dir, name))
        write_history(self.run_dir, self.records, self.switch_epoch)
        artifacts.write_json(
            os.path.join(self.run_dir, STATE_FILE),
            {
                "completed_epochs": completed,
                "total_epochs": self.total_epochs,
                "switch_epoch": self.switch_epoch,
                "stage": int(getattr(self.model, "stage", 0)),
                "finished": False,
                "checkpoint": name,
                "random_state": random_state(self.model),
            },
        )
        remove_checkpoints(self.run_dir, keep=name)
        _test_pause()


def random_state_variables(model):
    """The states of the model's random generators (augmentation, dropout), in order."""
    return [v for v in model.variables if v.name == "seed_generator_state"]


def random_state(model):
    return [np.asarray(keras.ops.convert_to_numpy(v)).tolist() for v in random_state_variables(model)]


def restore_random_state(model, values):
    """Put saved generator states back; False when they do not fit the model."""
    variables = random_state_variables(model)
    if values is None or len(values) != len(variables):
        return False
    for variable, value in zip(variables, values):
        variable.assign(np.asarray(value, dtype=variable.dtype))
    return True


def write_history(run_dir, records, switch_epoch):
    artifacts.write_json(
        os.path.join(run_dir, HISTORY_FILE),
        {"switch_epoch": switch_epoch, "epochs": records},
    )
    write_history_csv(run_dir, records)


def _test_pause():
    """TEST HOOK: sleep after a committed epoch when CATDOG_TEST_PAUSE_AFTER_EPOCH is set."""
    seconds = os.environ.get(TEST_PAUSE_ENV)
    if seconds:
        time.sleep(float(seconds))


def _number(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return int(number) if number.is_integer() and abs(number) < 2**31 and isinstance(value, int) else number


