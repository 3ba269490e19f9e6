"""Training on several devices (MirroredStrategy) and several processes (JAX multihost).

No GPU needed: MirroredStrategy runs on the CPU split into two logical
devices, and multihost runs two processes on 127.0.0.1 that talk through
JAX's gloo CPU collectives. Both run in subprocesses (device setup and the
backend are per process), each bounded by a timeout.
"""

import importlib.util
import json
import os
import pathlib
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

import catdog
from catdog.training import distribute
from conftest import calibrate_batchnorm, tiny_model, write_photo_folder

DRIVER = pathlib.Path(__file__).with_name("distributed_train.py")
TIMEOUT = 600
has_jax = pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason='needs JAX (pip install "catdog[jax]")')


# --- pieces, in this process ------------------------------------------------


def test_shard_batches_splits_each_global_batch_evenly():
    import tensorflow as tf

    images = np.arange(11 * 2, dtype=np.float32).reshape(11, 2)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.arange(11.0))).batch(4)  # 4, 4, 3
    shares = [
        list(distribute.shard_batches(dataset, 2, index, batch_size=4, examples=11).as_numpy_iterator())
        for index in range(2)
    ]
    assert [len(labels) for _, labels in shares[0]] == [2, 2, 1]
    for (_, first), (_, second), whole in zip(shares[0], shares[1], [range(0, 4), range(4, 8), range(8, 10)]):
        np.testing.assert_array_equal(np.concatenate([first, second]), list(whole))
    cardinality = distribute.shard_batches(dataset, 2, 1, batch_size=4, examples=11).cardinality()
    assert int(cardinality) == 3


def test_shard_batches_drops_a_last_batch_too_small_to_share():
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((np.zeros((9, 1)), np.zeros(9))).batch(4)  # 4, 4, 1
    for kwargs in ({"batch_size": 4, "examples": 9}, {}):
        batches = list(distribute.shard_batches(dataset, 2, 0, **kwargs).as_numpy_iterator())
        assert [len(labels) for _, labels in batches] == [2, 2]


def test_cluster_comes_from_options_or_keras_environment_variables():
    environ = {
        distribute.ENV_COORDINATOR: "10.1.2.3:7777",
        distribute.ENV_NUM_PROCESSES: "4",
        distribute.ENV_PROCESS_ID: "3",
    }
    assert distribute.Cluster.resolve(environ=environ) == distribute.Cluster("10.1.2.3:7777", 4, 3)
    assert distribute.Cluster.resolve("h:1", 2, 0, environ=environ) == distribute.Cluster("h:1", 2, 0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "--coordinator"),
        ({"coordinator": "h:1", "num_processes": 2}, "--process-id"),
        ({"coordinator": "h:1", "num_processes": 2, "process_id": 2}, "0..1"),
        ({"coordinator": "nohost", "num_processes": 2, "process_id": 0}, "HOST:PORT"),
    ],
)
def test_incomplete_cluster_is_a_config_error(kwargs, message):
    with pytest.raises(catdog.ConfigError, match=message):
        distribute.Cluster.resolve(environ={}, **kwargs)


def test_distribute_option_is_validated():
    with pytest.raises(catdog.ConfigError, match="mirrored"):
        catdog.TrainConfig(distribute="horovod")


def test_multihost_on_the_tensorflow_backend_says_to_use_jax(tmp_path):
    config = catdog.TrainConfig(
        data=str(tmp_path), out=str(tmp_path / "run"), distribute="multihost",
        coordinator="127.0.0.1:1", num_processes=2, process_id=0,
    )
    with pytest.raises(catdog.ConfigError, match="KERAS_BACKEND=jax"):
        distribute.setup(config)


def test_cli_passes_the_distribution_options(monkeypatch, tmp_path):
    from catdog import cli

    seen = {}

    def fake_train(config):
        seen["config"] = config
        raise catdog.ConfigError("stop here")

    monkeypatch.setattr("catdog.training.train.train", fake_train)
    code = cli.main([
        "train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--distribute", "multihost",
        "--coordinator", "127.0.0.1:5000", "--num-processes", "2", "--process-id", "1",
    ])
    config = seen["config"]
    assert code == 2
    assert (config.distribute, config.coordinator, config.num_processes, config.process_id) == (
        "multihost", "127.0.0.1:5000", 2, 1,
    )


# --- whole runs, in subprocesses ---------------------------------------------


@pytest.fixture(scope="module")
def setup_files(tmp_path_factory):
    """Photos, and backbone weights whose BatchNorm statistics fit them.

    A random backbone with ImageNet-free statistics passes no gradient (see
    `calibrate_batchnorm`); calibrated, its stage-2 weights visibly train.
    """
    root = tmp_path_factory.mktemp("distribute")
    photos = write_photo_folder(root / "photos", per_class=8, size=(40, 40))
    keras.utils.set_random_seed(0)
    model = tiny_model(augmentation=False)
    rng = np.random.default_rng(0)
    from conftest import synthetic_photo

    calibrate_batchnorm(model, np.stack([synthetic_photo(i % 2, rng, (32, 32)) for i in range(16)]))
    weights = root / "backbone.weights.h5"
    model.backbone.save_weights(weights)
    return {"root": root, "photos": photos, "weights": weights, "backbone": model.backbone}


def driver_config(files, out, **overrides):
    """The run tests/distributed_train.py makes (it has its own copy of this)."""
    return dict(
        data=str(files["photos"]), out=str(out), image_size=32, alpha=0.35, weights=str(files["weights"]),
        epochs=1, fine_tune_epochs=1, batch_size=4, learning_rate=1e-2, fine_tune_learning_rate=1e-3,
        augmentation=False, seed=0, verbose=0, **overrides,
    )


def driver_command(files, out, dump, distribute_mode, *extra):
    return [
        sys.executable, str(DRIVER), "--distribute", distribute_mode, "--data", str(files["photos"]),
        "--out", str(out), "--weights", str(files["weights"]), "--dump", str(dump), *map(str, extra),
    ]


def run_processes(commands, env):
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for command in commands
    ]
    results = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=TIMEOUT)
            results.append((process.returncode, stdout, stderr))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    return results


def summary(result):
    code, stdout, stderr = result
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert lines, f"exit {code}; stderr:\n{stderr[-3000:]}"
    return json.loads(lines[-1])


def backbone_kernel(weights, backbone, index):
    """A backbone conv kernel from a dump (by position among backbone convs)."""
    convs = [layer for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D)]
    return weights[convs[index].kernel.path]


def assert_trained_through_both_stages(dump, files):
    weights = dict(np.load(dump))
    backbone = files["backbone"]
    convs = [layer for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D)]
    top = len(convs) - 1  # the last conv: in the fine-tuned top
    np.testing.assert_array_equal(backbone_kernel(weights, backbone, 0), convs[0].kernel.numpy())
    change = np.abs(backbone_kernel(weights, backbone, top) - convs[top].kernel.numpy()).max()
    assert change > 1e-6, "stage 2 did not train the top of the backbone"
    return weights


def assert_run_folder_is_complete(out):
    for name in ("model.keras", "history.json", "curves.png", "config.json", "run_state.json"):
        assert (out / name).is_file(), name
    assert not (out / "checkpoint.keras").exists()
    history = json.loads((out / "history.json").read_text())
    assert [record["stage"] for record in history["epochs"]] == [1, 2]
    loaded = catdog.load_model(str(out / "model.keras"))
    assert loaded.stage == 2
    p = keras.ops.convert_to_numpy(loaded(np.full((2, 50, 60, 3), 128, "uint8")))
    assert p.shape == (2, 1) and np.all((p >= 0) & (p <= 1))
    return loaded


@pytest.mark.slow
def test_mirrored_two_stage_run_on_two_logical_cpus_resumes(setup_files, tmp_path):
    out, dump = tmp_path / "run", tmp_path / "weights.npz"
    command = driver_command(
        setup_files, out, dump, "mirrored", "--logical-cpus", 2, "--stop-at-epoch", 1, "--resume-after-stop",
    )
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    (result,) = run_processes([command], env)
    assert result[0] == 0, result[2][-3000:]
    info = summary(result)
    assert info["replicas"] == 2 and info["backend"] == "tensorflow"
    assert info["stages"] == [1, 2] and info["epochs"] == [0, 1], "the second call resumes after epoch 0"
    assert info["model_stage"] == 2 and info["iterations"] == 3  # 12 training photos / global batch 4
    assert_trained_through_both_stages(dump, setup_files)
    assert_run_folder_is_complete(out)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@has_jax
def test_multihost_two_processes_on_localhost_resume_switch_and_agree(setup_files, tmp_path):
    """Two JAX processes resume a single-device TensorFlow run, switch stages and agree.

    Epoch 0 (stage 1) runs here, on one device, and stops at the start of
    epoch 1, leaving its checkpoint in process 0's run folder. The two
    processes then resume it (process 1 has no run folder: it gets the
    checkpoint from process 0), switch to stage 2 at epoch 1, and finish.
    """
    chief_out, other_out = tmp_path / "out0", tmp_path / "out1"
    with pytest.raises(StopForTest):
        catdog.train(
            catdog.TrainConfig(**driver_config(setup_files, chief_out)), callbacks=[StopAt(1)]
        )
    state = json.loads((chief_out / "run_state.json").read_text())
    assert {k: state[k] for k in ("completed_epochs", "total_epochs", "finished")} == {
        "completed_epochs": 1, "total_epochs": 2, "finished": False,
    }

    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    port = free_port()
    commands = [
        driver_command(
            setup_files, out, tmp_path / f"weights{index}.npz", "multihost",
            "--coordinator", f"127.0.0.1:{port}", "--num-processes", 2, "--process-id", index,
        )
        for index, out in enumerate((chief_out, other_out))
    ]
    results = run_processes(commands, env)
    for code, stdout, stderr in results:
        assert code == 0, stderr[-3000:]
    infos = [summary(result) for result in results]
    assert [info["is_chief"] for info in infos] == [True, False]
    assert infos[0]["stages"] == [1, 2] and infos[1]["stages"] == [2]  # the chief keeps the history
    for info in infos:
        assert info["backend"] == "jax" and info["model_stage"] == 2
        assert info["iterations"] == 3  # the stage-2 optimizer: 12 training photos / global batch 4
    assert not other_out.exists(), "only process 0 writes the run folder"
    first = assert_trained_through_both_stages(tmp_path / "weights0.npz", setup_files)
    second = dict(np.load(tmp_path / "weights1.npz"))
    assert first.keys() == second.keys()
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    loaded = assert_run_folder_is_complete(chief_out)  # saved under JAX, loaded here under TensorFlow
    for variable in loaded.weights:
        np.testing.assert_allclose(variable.numpy(), first[variable.path], err_msg=variable.path)


class StopForTest(Exception):
    pass


class StopAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise StopForTest()
