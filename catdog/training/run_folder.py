"""The run folder's one owner: its file names, its states and the rules to resume it.

Every name catdog writes into a run folder is declared here (the
evaluation's own names come from `catdog.evaluation.files`), so `--overwrite`
removes exactly catdog's files and nothing else (`owned_name`), and a new
file cannot be forgotten by the code that cleans up.

A run folder is in one of four states (`run_status`):

- "empty": no epoch has completed (or nothing is there): a run starts fresh;
- "unfinished": `run_state.json` names the checkpoint of the last completed
  epoch: the same command (or `--resume`) continues from it;
- "finished": `model.keras` is final: refused unless `--overwrite`;
- "broken": the run state names a checkpoint that is gone.

How it gets there after each epoch is `catdog.training.checkpoint`'s part.
"""

import glob
import json
import os
import re
from dataclasses import dataclass, field

from catdog import ownership
from catdog.errors import ConfigError
from catdog.evaluation.files import EVALUATION_FILES

MODEL_FILE = "model.keras"
STATE_FILE = "run_state.json"
HISTORY_FILE = "history.json"
HISTORY_CSV_FILE = "history.csv"
CONFIG_FILE = "config.json"
DATA_FILE = "data.json"
SKIPPED_FILE = "skipped.txt"
CURVES_FILE = "curves.png"
#: TensorBoard's folder, with one sub-folder per curve set (`StageTensorBoard`).
LOGS_DIR = "logs"
LOG_SUBFOLDERS = ("train", "validation")
#: Files of a run that `--overwrite` removes (besides checkpoints and logs):
#: the run's own and the validation evaluation written at its end.
RUN_FILES = frozenset({
    MODEL_FILE, STATE_FILE, HISTORY_FILE, HISTORY_CSV_FILE, CONFIG_FILE, DATA_FILE, SKIPPED_FILE, CURVES_FILE,
}) | EVALUATION_FILES
_CHECKPOINT = re.compile(r"checkpoint-epoch[0-9]+\.keras")
#: Settings that may differ between an interrupted run and its resumption.
RESUMABLE_DIFFERENCES = {
    "out", "overwrite", "resume", "verbose",
    # where a run trains, not what it trains: a run may resume on other devices
    "distribute", "coordinator", "num_processes", "process_id",
}


def checkpoint_name(completed_epochs):
    return f"checkpoint-epoch{int(completed_epochs)}.keras"


def is_checkpoint(name):
    return _CHECKPOINT.fullmatch(name) is not None


def is_temporary(name):
    """A half-written file `catdog.artifacts` left beside one of the run's own names."""
    target = ownership.temporary_target(name)
    return target is not None and owned_name(target)


def owned_name(name):
    """Whether `name` in a run folder is one of catdog's own files."""
    return name in RUN_FILES or is_checkpoint(name) or is_temporary(name)


@dataclass
class ResumePoint:
    """Where an unfinished run continues: epoch, checkpoint, history, RNG state."""

    epoch: int
    checkpoint: str
    records: list = field(default_factory=list)
    random_state: list | None = None
    previous_data: dict | None = None


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

    Only catdog's exact file names (`owned_name`); the marker and the lock
    stay, and so does anything else.
    """
    if not ownership.is_catdog_folder(run_dir):
        return
    for name in RUN_FILES:
        path = os.path.join(run_dir, name)
        if os.path.isfile(path) and not os.path.islink(path):
            os.remove(path)
    remove_checkpoints(run_dir)
    remove_temporaries(run_dir)
    remove_logs(run_dir)


def remove_checkpoints(run_dir, keep=None):
    for name in _names(run_dir):
        if is_checkpoint(name) and name != keep:
            _remove_file(os.path.join(run_dir, name))


def remove_temporaries(run_dir):
    """Delete half-written files a killed run left behind (never the real ones).

    Only temporaries of catdog's own file names (".history.json.x1y2z3a4.tmp.json"):
    a user's ".draft.tmp" is not catdog's.
    """
    for name in _names(run_dir):
        if is_temporary(name):
            _remove_file(os.path.join(run_dir, name))


def _names(folder):
    try:
        return os.listdir(folder)
    except OSError:
        return []


def _remove_file(path):
    if os.path.isfile(path) and not os.path.islink(path):
        os.remove(path)


def remove_logs(run_dir):
    """Delete the event files catdog wrote under `run_dir/logs/`, nothing else."""
    logs = os.path.join(run_dir, LOGS_DIR)
    for sub in LOG_SUBFOLDERS:
        folder = os.path.join(logs, sub)
        for path in glob.glob(os.path.join(glob.escape(folder), "events.out.tfevents.*")):
            if os.path.isfile(path):
                os.remove(path)
        _remove_if_empty(folder)
    _remove_if_empty(logs)


def _remove_if_empty(folder):
    try:
        os.rmdir(folder)
    except OSError:  # not there, or holds something that is not ours
        pass


def read_json(path, default=None):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return default


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
