"""Per-epoch checkpoints and history, so an interrupted run loses at most an epoch.

A run folder is in one of four states (`run_status`):

- "empty": no epoch has completed (or nothing is there): a run starts fresh;
- "unfinished": `run_state.json` names the checkpoint of the last completed
  epoch: the same command (or `--resume`) continues from it;
- "finished": `model.keras` is final: refused unless `--overwrite`;
- "broken": the run state names a checkpoint that is gone.

After each epoch `RunCheckpoint` writes, in this order, each file atomically:
the checkpoint `checkpoint-epochN.keras` (N completed epochs), `history.json`,
then `run_state.json`, which names that checkpoint. The run state is the
commit point: a kill at any moment leaves it naming a complete checkpoint of
the epoch it records, and the history holds at least that many epochs. Only
then is the previous checkpoint deleted.
"""

import json
import math
import os
import time
from dataclasses import dataclass, field

import keras
import numpy as np

from catdog import artifacts, ownership
from catdog.errors import ConfigError
from catdog.history_csv import HISTORY_CSV_FILE, write_history_csv
from catdog.tensorboard_logs import remove_logs

HISTORY_FILE = "history.json"
STATE_FILE = "run_state.json"
MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
DATA_FILE = "data.json"
SKIPPED_FILE = "skipped.txt"
CURVES_FILE = "curves.png"
#: Files of a run that `--overwrite` removes (besides checkpoints).
RUN_FILES = (
    MODEL_FILE, STATE_FILE, HISTORY_FILE, CURVES_FILE, CONFIG_FILE, DATA_FILE, SKIPPED_FILE, HISTORY_CSV_FILE,
    # the validation evaluation written at the end (catdog.evaluation, catdog.report)
    "metrics.json", "confusion_matrix.png", "roc_curve.png", "confidently_wrong.png", "report.html",
)
#: Settings that may differ between an interrupted run and its resumption.
RESUMABLE_DIFFERENCES = {
    "out", "overwrite", "resume", "verbose",
    # where a run trains, not what it trains: a run may resume on other devices
    "distribute", "coordinator", "num_processes", "process_id",
}

#: TEST HOOK (not for users): seconds to sleep after each epoch's checkpoint
#: is committed, so a test can kill a real `catdog train` at a known point.
TEST_PAUSE_ENV = "CATDOG_TEST_PAUSE_AFTER_EPOCH"


def checkpoint_name(completed_epochs):
    return f"checkpoint-epoch{int(completed_epochs)}.keras"


@dataclass
class ResumePoint:
    """Where an unfinished run continues: epoch, checkpoint, history, RNG state."""

    epoch: int
    checkpoint: str
    records: list = field(default_factory=list)
    random_state: list | None = None
    previous_data: dict | None = None


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
        artifacts.save_model(self.model, os.path.join(self.run_dir, name))
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


def run_status(run_dir):
    """"empty", "unfinished", "finished" or "broken" (see the module docstring)."""
    state = read_json(os.path.join(run_dir, STATE_FILE))
    if state is None:
        return "finished" if os.path.exists(os.path.join(run_dir, MODEL_FILE)) else "empty"
    if state.get("finished"):
        return "finished"
    name = state.get("checkpoint")
    if name and os.path.isfile(os.path.join(run_dir, name)):
        return "unfinished"
    return "broken"


def prepare_run_dir(config):
    """Create the run folder; return a `ResumePoint`, or None to start fresh.

    A finished run is refused unless `config.overwrite`; an unfinished one
    is resumed (if `config.resume`) when it was started with the same
    settings, and refused otherwise.

    Raises:
        ConfigError: the folder cannot be used as it is, with what to do
            (among others: it is not a catdog folder, see `catdog.ownership`).
    """
    run_dir = config.out
    # a folder holding what catdog did not write is refused, --overwrite or not
    ownership.claim_folder(run_dir, ownership.RUN)
    status = run_status(run_dir)
    if status != "empty" and config.overwrite:
        clear_run(run_dir)
        status = "empty"
    remove_temporaries(run_dir)
    if status == "empty":
        return None
    if status == "finished":
        raise ConfigError(
            f"{run_dir} already holds a finished run; pass --overwrite to replace it "
            "or choose another --out"
        )
    if status == "broken":
        raise ConfigError(
            f"{run_dir} holds an unfinished run whose checkpoint is missing; "
            "pass --overwrite to start over"
        )
    if not config.resume:
        raise ConfigError(
            f"{run_dir} holds an unfinished run; pass --overwrite to start over "
            "or resume it"
        )
    differences = config_differences(read_json(os.path.join(run_dir, CONFIG_FILE)), config.to_dict())
    if differences:
        raise ConfigError(
            f"{run_dir} holds an unfinished run with other settings ({'; '.join(differences)}); "
            "rerun with the same settings to resume it, or pass --overwrite to start over"
        )
    state = read_json(os.path.join(run_dir, STATE_FILE))
    epoch = int(state["completed_epochs"])
    records = (read_json(os.path.join(run_dir, HISTORY_FILE)) or {}).get("epochs", [])
    return ResumePoint(
        epoch=epoch,
        checkpoint=os.path.join(run_dir, state["checkpoint"]),
        records=[r for r in records if r.get("epoch", epoch) < epoch],
        random_state=state.get("random_state"),
        previous_data=read_json(os.path.join(run_dir, DATA_FILE)),
    )


def config_differences(saved, current):
    """["name: saved -> current", ...] for settings a resumed run must keep."""
    if not saved:
        return []
    current = json.loads(json.dumps(current, default=str))  # compare as saved
    names = sorted((set(saved) | set(current)) - RESUMABLE_DIFFERENCES)
    return [
        f"{name.replace('_', '-')}: {saved.get(name)!r} -> {current.get(name)!r}"
        for name in names
        if saved.get(name) != current.get(name)
    ]


def clear_run(run_dir):
    """Remove what a catdog run wrote into `run_dir` (for `--overwrite`).

    Only catdog's exact file names (`catdog.ownership.owned_name`); the
    marker and the lock stay, and so does anything else.
    """
    if not ownership.is_catdog_folder(run_dir):
        return
    for name in RUN_FILES:
        path = os.path.join(run_dir, name)
        if os.path.isfile(path) and not os.path.islink(path):
            os.remove(path)
    remove_checkpoints(run_dir)
    remove_temporaries(run_dir)
    remove_logs(run_dir)  # the TensorBoard event files of logs/


def remove_checkpoints(run_dir, keep=None):
    for name in _names(run_dir):
        if ownership.is_checkpoint(name) and name != keep:
            _remove_file(os.path.join(run_dir, name))


def remove_temporaries(run_dir):
    """Delete half-written files a killed run left behind (never the real ones).

    Only temporaries of catdog's own file names (".history.json.x1y2z3a4.tmp.json"):
    a user's ".draft.tmp" is not catdog's.
    """
    for name in _names(run_dir):
        if ownership.is_temporary(name):
            _remove_file(os.path.join(run_dir, name))


def _names(folder):
    try:
        return os.listdir(folder)
    except OSError:
        return []


def _remove_file(path):
    if os.path.isfile(path) and not os.path.islink(path):
        os.remove(path)


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


def read_json(path, default=None):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return default


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


def check_resume_request(run_dir, resume=False, overwrite=False):
    """The command line's `--resume` and `--overwrite`, checked before any work.

    Without either, an unfinished run in `run_dir` is continued and an empty
    folder starts a new one; `--resume` insists on continuing (a typo in
    `--out` must not silently start from scratch); `--overwrite` starts over.
    Returns the folder's `run_status` ("empty" when it will be overwritten).
    """
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite contradict each other: choose one")
    status = run_status(run_dir) if os.path.isdir(run_dir) else "empty"
    if overwrite or not resume:
        return "empty" if overwrite else status
    if status == "empty":
        raise ConfigError(f"--resume: {run_dir} holds no unfinished run to continue")
    if status == "finished":
        raise ConfigError(f"--resume: the run in {run_dir} has already finished")
    return status
