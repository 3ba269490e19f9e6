"""A new user's first run, for real: the README's TFDS data, its log, its
TensorBoard logs, and rerunning it from its own config.json.

TFDS' own `cats_vs_dogs` builder prepares a miniature of the real archive
offline: nothing replaces `tfds.load` or the builder; the archive is put
where TFDS' download manager keeps a finished download (see tfds_archive.py),
so TFDS' download step, archive reading, JFIF filtering, re-encoding and
TFRecord writing all run. One `catdog train` on it (from a YAML config, with
standard output a file, not a terminal) serves most tests here; one more run
reruns it from its config.json.
"""

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import urllib.parse

import numpy as np
import pytest

from catdog import cli
from conftest import ROOT, assert_one_line_error, calibrate_batchnorm, run_cli, synthetic_photo, tiny_model
from tfds_archive import stage_download

tfds = pytest.importorskip("tensorflow_datasets")

PER_CLASS = 10  # 20 photos: TFDS' 80/20 split gives 16 for training, 4 for validation
#: The README's recipe, shrunk: a narrow MobileNetV2 (alpha has no option, so
#: only a config file sets it) at 32x32, two head epochs and one fine-tuning
#: epoch; its backbone's BatchNorm statistics are calibrated on such photos
#: (a random backbone's activations vanish, and the run would learn nothing).
TINY_YAML = """\
# a tiny first run
data: tfds:cats_vs_dogs
image_size: 32
alpha: 0.35
weights: {weights}
epochs: 2
fine_tune_epochs: 1
fine_tune_learning_rate: 2e-5   # YAML 1.1 would read this as a string; catdog reads a number
batch_size: 4
"""


def catdog(*args):
    """`catdog ARGS` in this process, standard output a file: (code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as exit:
            code = exit.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def tfds_data_dir(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("tfds")
    good = stage_download(data_dir, per_class=PER_CLASS)
    return data_dir, good


@pytest.fixture
def with_tfds(tfds_data_dir, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tfds_data_dir[0]))
    return tfds_data_dir


def calibrated_backbone(path):
    import keras

    keras.utils.set_random_seed(0)
    model = tiny_model()
    rng = np.random.default_rng(0)
    calibrate_batchnorm(model, np.stack([synthetic_photo(i % 2, rng, (32, 32)) for i in range(16)]))
    model.backbone.save_weights(path)
    return path


@pytest.fixture(scope="module")
def first_run(tfds_data_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("first")
    weights = calibrated_backbone(folder / "backbone.weights.h5")
    (folder / "tiny.yaml").write_text(TINY_YAML.format(weights=weights))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFDS_DATA_DIR", str(tfds_data_dir[0]))
        code, stdout, stderr = catdog("train", "--config", folder / "tiny.yaml", "--out", folder / "run")
    assert code == 0, stderr[-3000:]
    return folder / "run", stdout


def history(run):
    return json.loads((run / "history.json").read_text())["epochs"]


def test_tfds_builder_prepared_the_archive_and_catdog_trained_on_its_80_20_split(first_run, with_tfds):
    from catdog.data.sources import load_splits

    run, _ = first_run
    data_dir, good = with_tfds
    # TFDS' builder kept the 20 JFIF photos, each labelled by its folder, and
    # dropped the 1,738 other .jpg files, the readme, the licence and Thumbs.db.
    builder = tfds.builder("cats_vs_dogs", data_dir=str(data_dir))
    assert builder.is_prepared() and builder.info.splits["train"].num_examples == 2 * PER_CLASS
    names = {e["image/filename"].decode(): int(e["label"]) for e in tfds.as_numpy(builder.as_dataset(split="train"))}
    assert names == {**{n: 0 for n in good["cat"]}, **{n: 1 for n in good["dog"]}}  # cat=0, dog=1

    data = json.loads((run / "data.json").read_text())
    assert data["source"] == "tfds:cats_vs_dogs"
    assert data["counts"]["train"] == 16 and data["counts"]["validation"] == 4
    assert [e["stage"] for e in history(run)] == [1, 1, 2]
    assert (run / "model.keras").stat().st_size > 0

    # catdog's pipeline keeps TFDS' labels: reddish photos are cats (0), bluish ones dogs (1).
    splits = load_splits("tfds:cats_vs_dogs", image_size=32, batch_size=32)
    for dataset, size in ((splits.train, 16), (splits.validation, 4)):
        x, y = (np.concatenate(parts) for parts in zip(*[(a.numpy(), b.numpy()) for a, b in dataset]))
        bluish = x[..., 2].mean(axis=(1, 2)) > x[..., 0].mean(axis=(1, 2))
        assert len(y) == size
        np.testing.assert_array_equal(y.reshape(-1), bluish.astype(float))


def test_evaluate_on_tfds_uses_the_runs_validation_part(first_run, with_tfds, capsys):
    run, _ = first_run
    code, stdout, stderr = run_cli(capsys, "evaluate", run / "model.keras", "--data", "tfds:cats_vs_dogs", "--json")
    assert code == 0, stderr[-3000:]
    result = json.loads(stdout)
    assert result["n_images"] == 4 and result["n_skipped"] == 0 and np.sum(result["confusion_matrix"]) == 4
    assert result["accuracy"] == pytest.approx(json.loads((run / "metrics.json").read_text())["accuracy"])


def test_the_log_is_one_line_per_epoch_when_stdout_is_not_a_terminal(first_run):
    run, stdout = first_run
    lines = stdout.splitlines()
    epochs = [l for l in lines if l.startswith("catdog: epoch ")]
    # The default cosine from 2e-5 ends its one stage-2 epoch at 0: Keras logs the rate after the epoch.
    assert [l.split(":")[1].strip() for l in epochs] == [
        "epoch 1/3 (stage 1, lr 0.001)", "epoch 2/3 (stage 1, lr 0.001)", "epoch 3/3 (stage 2, lr 0)",
    ]
    for line, record in zip(epochs, history(run)):
        assert f"loss {record['loss']:.4f}, accuracy {record['accuracy']:.4f}" in line
        assert f"val_loss {record['val_loss']:.4f}, val_accuracy {record['val_accuracy']:.4f}" in line
    assert "\r" not in stdout and "\x1b" not in stdout and "━" not in stdout  # no progress bars
    ours = [l for l in lines if l.startswith("catdog: ")]
    assert len(ours) <= len(epochs) + 3 and all(len(l) < 300 for l in lines)  # + cache, report, summary
    tfds_first_use = ("Downloading and preparing dataset", "Dataset cats_vs_dogs downloaded and prepared")
    assert all(l.startswith(tfds_first_use) for l in lines if l not in ours)  # TFDS' own two lines


def test_tensorboard_logs_hold_every_epoch_of_both_stages(first_run):
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    run, _ = first_run
    records = history(run)

    def scalars(sub):
        reader = event_accumulator.EventAccumulator(str(run / "logs" / sub), size_guidance={event_accumulator.TENSORS: 0})
        reader.Reload()
        return {
            tag: [(e.step, tensor_util.make_ndarray(e.tensor_proto).item()) for e in reader.Tensors(tag)]
            for tag in reader.Tags()["tensors"]
        }

    train, validation = scalars("train"), scalars("validation")
    assert train["epoch_stage"] == [(0, 1.0), (1, 1.0), (2, 2.0)]  # the switch, at epoch 2
    # The rate after each epoch: the default cosine from 2e-5 is at 0 after its one stage-2 epoch.
    assert [(s, pytest.approx(v)) for s, v in train["epoch_learning_rate"]] == [(0, 1e-3), (1, 1e-3), (2, 0.0)]
    for name in ("loss", "accuracy"):
        assert train[f"epoch_{name}"] == [(r["epoch"], pytest.approx(r[name])) for r in records]
        assert validation[f"epoch_{name}"] == [(r["epoch"], pytest.approx(r[f"val_{name}"])) for r in records]
    assert [step for step, _ in train["stage"]] == [0, 2]  # a note at the start of each stage


def test_history_csv_holds_what_history_json_holds(first_run):
    import csv

    run, _ = first_run
    rows = list(csv.DictReader((run / "history.csv").open()))
    records = history(run)
    assert list(rows[0])[:7] == ["epoch", "stage", "learning_rate", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert len(rows) == len(records) == 3
    for row, record in zip(rows, records):
        assert {k: float(v) for k, v in row.items()} == {k: pytest.approx(float(v)) for k, v in record.items()}


@pytest.mark.slow  # a long run whose path the default suite also takes: `make test-slow` (keeps `make test` near 10 minutes)
def test_rerunning_config_json_reproduces_the_run_in_another_folder(first_run, with_tfds, tmp_path):
    import keras

    run, _ = first_run
    # The run lock (.catdog.lock, catdog's own) names whoever last held it: not the run's files.
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".catdog.lock"}
    # Without --out the file's own out is the finished run: refused, nothing touched.
    code, _, err = catdog("train", "--config", run / "config.json")
    assert_one_line_error(code, err, "already holds a finished run")

    again = tmp_path / "again"
    code, stdout, err = catdog("train", "--config", run / "config.json", "--out", again, "--quiet")
    assert code == 0, err[-3000:]
    assert stdout.count("\n") == 1 and "trained 3 epochs" in stdout  # --quiet: the summary line only
    assert [(r["val_accuracy"], r["val_loss"], r["loss"]) for r in history(again)] == [
        (r["val_accuracy"], r["val_loss"], r["loss"]) for r in history(run)
    ]
    assert len({r["val_accuracy"] for r in history(run)} | {r["loss"] for r in history(run)}) > 2  # it learned
    # The same weights (the random generators' states are not in .keras files: loading draws new ones).
    first, second = (keras.saving.load_model(folder / "model.keras") for folder in (run, again))
    weights = [[v.numpy() for v in m.variables if "seed_generator" not in v.path] for m in (first, second)]
    assert len(weights[0]) == len(weights[1]) > 200
    assert all(np.array_equal(a, b) for a, b in zip(*weights))
    saved = json.loads((again / "config.json").read_text())
    assert saved == {**json.loads((run / "config.json").read_text()), "out": str(again), "verbose": 0}
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".catdog.lock"} == before


@pytest.mark.parametrize(
    "content, name, fragments",
    [
        ("epoch: 3\n", "c.yaml", ["unknown key 'epoch'", "did you mean 'epochs'"]),
        ("epochs: three\n", "c.yaml", ["epochs must be an integer", "'three'"]),
        ('{"augmentation": "yes"}', "c.json", ["augmentation must be true or false"]),
        ('{"fine_tune_at": 1.5}', "c.json", ["fine_tune_at must be an integer or a string"]),
        ("epochs: [\n", "c.yaml", ["not valid YAML at line 2"]),
        (None, "missing.yaml", ["missing.yaml: no such file"]),
        ("epochs: -1\n", "c.yaml", ["epochs must be 0 or more"]),
    ],
)
def test_bad_config_files_are_one_line_errors_naming_the_key(tmp_path, capsys, content, name, fragments):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    code, _, err = run_cli(capsys, "train", "--config", path, "--out", tmp_path / "run", "--data", tmp_path)
    assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "run").exists()


def test_options_override_the_file_and_verbosity_follows_the_terminal(tmp_path, monkeypatch):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"epochs": 7, "seed": 3, "out": "runs/x", "augmentation": False,
                                "overwrite": True, "resume": False, "verbose": 0}))
    args = cli.parse_args(["train", "--config", str(path), "--seed", "5"])
    assert (args.epochs, args.seed, args.out, args.no_augmentation) == (7, 5, "runs/x", True)
    assert args.overwrite is False and args.resume is False  # never from a file
    assert args.verbose == 2  # not from the file: stdout (pytest's) is not a terminal
    assert cli.parse_args(["train", "--out", "o", "--quiet"]).verbose == 0
    path.write_text(json.dumps({"colour_augmentation": False, "out": "runs/y"}))
    assert cli.parse_args(["train", "--config", str(path)]).no_colour_augmentation is True
    assert cli.parse_args(["train", "--out", "o"]).no_colour_augmentation is False
    assert cli.parse_args(["train", "--out", "o", "--no-colour-augmentation"]).no_colour_augmentation is True
    assert cli.parse_args(["train", "--out", "o", "--verbose", "1"]).verbose == 1

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert cli.default_verbosity(Terminal()) == 1 and cli.default_verbosity(io.StringIO()) == 2


def _reachable(url):
    try:
        socket.create_connection((urllib.parse.urlsplit(url).hostname, 443), timeout=3).close()
        return True
    except OSError:
        return False


def test_offline_without_a_prepared_copy_is_the_network_message_at_once(tmp_path, monkeypatch, capsys):
    [url] = tfds.builder_cls("cats_vs_dogs").url_infos
    if _reachable(url):
        pytest.skip("this machine can reach the download: the test would download 825 MB")
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "empty"))
    code, _, err = run_cli(capsys, "train", "--data", "tfds:cats_vs_dogs", "--out", tmp_path / "run", "--weights", "none")
    assert_one_line_error(code, err, "cannot be downloaded: no network", "--data DIR")
    assert "module" not in err


def test_a_missing_module_is_named_with_its_install_command(tmp_path):
    """The fresh-machine failure: TFDS needs importlib_resources (blocked here) to build the builder."""
    code = (
        "import sys\n"
        "sys.modules['importlib_resources'] = None  # as on a machine without it\n"
        "from catdog.data.tfds_source import open_tfds\n"
        "try:\n"
        "    open_tfds('cats_vs_dogs', split='train')\n"
        "except Exception as error:\n"
        "    print(type(error).__name__, error)\n"
    )
    env = {**os.environ, "TFDS_DATA_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("DataError TFDS cats_vs_dogs cannot be loaded"), line
    assert "'importlib_resources' is not installed" in line and "pip install importlib_resources" in line
    assert "network" not in line


def test_tfds_failures_are_told_apart():
    from catdog.data.tfds_source import describe_failure

    try:
        try:
            socket.getaddrinfo("no-such-host.invalid", 443)
        except OSError as error:
            raise RuntimeError("download failed after retries") from error
    except RuntimeError as error:
        offline = describe_failure("cats_vs_dogs", error)
    assert "no network" in str(offline) and "--data DIR" in str(offline)

    try:
        import catdog_no_such_module  # noqa: F401
    except ImportError as error:
        missing = describe_failure("cats_vs_dogs", error)
    assert "'catdog_no_such_module' is not installed" in str(missing)
    assert "pip install PyYAML" in str(describe_failure("x", ModuleNotFoundError("no yaml", name="yaml")))

    other = describe_failure("cats_vs_dogs", ValueError("Expected 1738 corrupt images, but found 3.\nmore"))
    assert str(other) == "TFDS cats_vs_dogs failed: ValueError: Expected 1738 corrupt images, but found 3."
