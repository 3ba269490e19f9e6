"""Whole training runs: reproducible with a seed, resumable after a kill, stopped on NaN.

The runs train on a messy folder (see messy.py), so they also show that
training keeps going past unusable files and lists them in skipped.txt.
They use a full-width MobileNetV2 (the command line's) at 32x32 whose
BatchNorm statistics are calibrated on the photos: a random backbone's
activations vanish, and so would any difference between runs.
"""

import contextlib
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

import catdog
from catdog import cli
from catdog.training.checkpoint import TEST_PAUSE_ENV
from catdog.training.run_folder import read_json
from conftest import calibrate_batchnorm, synthetic_photo
from messy import write_messy_folder

pytestmark = pytest.mark.slow

#: One stage-1 epoch, two stage-2 epochs: kills land in each stage.
RUN = dict(image_size=32, batch_size=4, epochs=1, fine_tune_epochs=2)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = catdog.CatDogClassifier(image_size=32, alpha=1.0, weights=None)
    rng = np.random.default_rng(0)
    calibrate_batchnorm(model, np.stack([synthetic_photo(i % 2, rng, (32, 32)) for i in range(16)]))
    path = tmp_path_factory.mktemp("weights") / "calibrated.weights.h5"
    model.backbone.save_weights(path)
    return str(path)


@pytest.fixture(scope="module")
def messy_data(tmp_path_factory):
    root, expect = write_messy_folder(tmp_path_factory.mktemp("runs") / "photos")
    return str(root), expect


class Snapshots(keras.callbacks.Callback):
    """The model's weights at the end of each epoch."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(weights_of(self.model))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, messy_data, weights_file):
    """An uninterrupted run with seed 0, in this process, and its weights per epoch."""
    out = tmp_path_factory.mktemp("reference") / "run"
    snapshots = Snapshots()
    result = catdog.train(
        catdog.TrainConfig(data=messy_data[0], out=str(out), weights=weights_file, seed=0, verbose=0, **RUN),
        callbacks=[snapshots],
    )
    result.snapshots = snapshots.weights
    return result


def weights_of(model):
    return [np.asarray(v.numpy()) for v in model.weights]


def same_weights(a, b):
    a, b = (weights_of(m) if hasattr(m, "weights") else m for m in (a, b))
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def without_seconds(history):
    return [{k: v for k, v in record.items() if k != "seconds"} for record in history]


def test_a_run_with_bad_files_lists_them_in_the_run_folder(reference, messy_data):
    root, expect = messy_data
    skipped_lines = open(os.path.join(reference.run_dir, "skipped.txt")).read().splitlines()
    expected = {name for name, (verdict, _) in expect.items() if verdict == "skip"}
    assert {os.path.relpath(line.split("\t")[0], root) for line in skipped_lines} == expected
    assert all(line.split("\t")[1] for line in skipped_lines)
    assert json.load(open(os.path.join(reference.run_dir, "data.json")))["skipped"] == len(expected)


def train_command(data, out, weights, *extra):
    return [
        sys.executable, "-m", "catdog", "train", "--data", data, "--out", out, "--weights", weights,
        "--image-size", RUN["image_size"], "--batch-size", RUN["batch_size"], "--epochs", RUN["epochs"],
        "--fine-tune-epochs", RUN["fine_tune_epochs"], "--quiet", *extra,
    ]


def kill_after_epoch(command, out, completed, logs, timeout=600):
    """Start `command`, SIGKILL it once run_state.json shows `completed` epochs.

    The test hook makes the run sleep after each committed epoch, so the kill
    lands while the next epoch would be starting, not after the run ended.
    """
    env = {**os.environ, TEST_PAUSE_ENV: "600", "CATDOG_DEBUG": ""}
    with open(logs, "w") as log:
        process = subprocess.Popen([str(c) for c in command], env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    try:
        while (read_json(os.path.join(out, "run_state.json")) or {}).get("completed_epochs") != completed:
            if process.poll() is not None:
                pytest.fail(f"catdog train ended early ({process.returncode}): {open(logs).read()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"no epoch {completed} within {timeout} s: {open(logs).read()[-3000:]}")
            time.sleep(0.1)
        process.send_signal(signal.SIGKILL)
        assert process.wait(60) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return read_json(os.path.join(out, "run_state.json"))


def run_cli(*args):
    """`catdog ARGS` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def interrupted(messy_data, weights_file, tmp_path_factory):
    """`catdog train` SIGKILLed after epoch 1 (stage 1), started again with the
    same command and SIGKILLed after epoch 2 (stage 2), then finished with
    `--resume` (in this process, to save a TensorFlow start-up). What each
    kill left is kept for the tests."""
    folder = tmp_path_factory.mktemp("interrupted")
    out = folder / "run"
    command = train_command(messy_data[0], out, weights_file)
    kills = []
    for completed in (1, 2):
        state = kill_after_epoch(command, out, completed, folder / f"run{completed}.log")
        kills.append(
            {
                "state": state,
                "model": catdog.load_model(os.path.join(out, state["checkpoint"])),
                "history": read_json(out / "history.json")["epochs"],
            }
        )
    code, stdout, stderr = run_cli(*command[3:], "--resume")
    assert code == 0, stderr[-3000:]
    return {"out": out, "kills": kills, "stdout": stdout}


def test_the_same_seed_gives_the_same_run(reference, interrupted):
    # The first `catdog train` process and the reference run in this process,
    # both seed 0, after their first epoch:
    first = interrupted["kills"][0]
    assert same_weights(first["model"], reference.snapshots[0])
    assert without_seconds(first["history"]) == without_seconds(reference.history)[:1]
    assert not same_weights(reference.snapshots[0], reference.snapshots[1])  # it did train


def test_a_run_killed_in_each_stage_resumes_where_it_was(reference, interrupted):
    out, (first, second) = interrupted["out"], interrupted["kills"]
    steps = math.ceil(reference.data["counts"]["train"] / RUN["batch_size"])

    # Killed in stage 1, after its only epoch.
    assert first["state"]["stage"] == 1 and not first["state"]["finished"]
    model = first["model"]
    assert model.stage == 1 and len(model.trainable_variables) == 2  # the head only
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-3)
    assert int(model.optimizer.iterations.numpy()) == steps
    assert [r["epoch"] for r in first["history"]] == [0]

    # Restarted with the same command: it went on into stage 2; killed after that epoch.
    assert second["state"]["stage"] == 2 and second["state"]["completed_epochs"] == 2
    model = second["model"]
    assert model.stage == 2 and len(model.trainable_variables) == len(reference.model.trainable_variables) > 2
    # The default cosine from 2e-5, half way through stage 2 (1 of 2 epochs): 2e-5 * (1 + cos(pi/2)) / 2.
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(1e-5)
    assert int(model.optimizer.iterations.numpy()) == steps  # the stage-2 optimizer's first epoch
    assert second["history"][:1] == first["history"]  # epoch 0 was not trained again

    # Restarted again, with --resume: it finished.
    assert "resumed after epoch 2" in interrupted["stdout"]
    history = read_json(out / "history.json")
    assert history["epochs"][:2] == second["history"]  # nor was epoch 1
    assert [r["epoch"] for r in history["epochs"]] == [0, 1, 2]
    assert [r["stage"] for r in history["epochs"]] == [1, 2, 2]
    assert without_seconds(history["epochs"]) == without_seconds(reference.history)
    final = catdog.load_model(str(out / "model.keras"))
    assert int(final.optimizer.iterations.numpy()) == 2 * steps  # optimizer state carried over the kill
    assert same_weights(final, reference.model)  # exactly the uninterrupted run
    assert read_json(out / "run_state.json")["finished"] is True
    assert not list(out.glob("checkpoint-*")) and not list(out.glob(".*.tmp*"))


def test_another_seed_gives_another_run_and_divergence_keeps_the_last_good_checkpoint(
    reference, messy_data, weights_file, tmp_path
):
    """Seed 1, and a stage-2 learning rate that blows the weights up (one run for both).

    1e30 was not enough on every CPU: on an Intel Xeon the clipped
    cross-entropy stayed finite. 3e38 (near float32's largest) overflows.
    """
    out = tmp_path / "run"
    command = train_command(messy_data[0], out, weights_file, "--seed", 1, "--fine-tune-epochs", 1, "--fine-tune-lr", "3e38")
    code, _, stderr = run_cli(*command[3:])
    assert code == 2, stderr[-3000:]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    # Which non-finite value comes first depends on the CPU's arithmetic.
    assert re.search(r"training loss became (nan|inf) ", lines[0]) and "epoch 1" in lines[0]
    assert "last good checkpoint" in lines[0] and "checkpoint-epoch1.keras" in lines[0]
    state = read_json(out / "run_state.json")
    assert state["completed_epochs"] == 1 and not state["finished"]
    kept = catdog.load_model(str(out / state["checkpoint"]))
    assert kept.stage == 1 and all(np.isfinite(w).all() for w in weights_of(kept))
    assert not (out / "model.keras").exists()
    history = read_json(out / "history.json")["epochs"]
    assert [r["epoch"] for r in history] == [0]
    assert not same_weights(kept, reference.snapshots[0])  # another seed: another run
    assert history[0]["loss"] != reference.history[0]["loss"]


def test_tensorboard_logs_of_a_killed_and_resumed_run_hold_each_epoch_once(interrupted):
    """One timeline, epochs 0, 1, 2, each once, though each kill landed after an epoch's
    checkpoint and before its TensorBoard log: the next process logged it from the history."""
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    out = interrupted["out"]
    history = read_json(out / "history.json")["epochs"]
    for sub, key in (("train", "loss"), ("validation", "val_loss")):
        assert len(list((out / "logs" / sub).glob("events.out.tfevents.*"))) == 2  # the resumed processes'
        reader = event_accumulator.EventAccumulator(str(out / "logs" / sub), size_guidance={event_accumulator.TENSORS: 0})
        reader.Reload()
        losses = [(e.step, tensor_util.make_ndarray(e.tensor_proto).item()) for e in reader.Tensors("epoch_loss")]
        assert losses == [(r["epoch"], pytest.approx(r[key])) for r in history]
    reader = event_accumulator.EventAccumulator(str(out / "logs" / "train"), size_guidance={event_accumulator.TENSORS: 0})
    reader.Reload()
    stages = [(e.step, tensor_util.make_ndarray(e.tensor_proto).item()) for e in reader.Tensors("epoch_stage")]
    assert stages == [(0, 1.0), (1, 2.0), (2, 2.0)]
    assert (out / "history.csv").read_text().count("\n") == 1 + len(history)
