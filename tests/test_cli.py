"""The catdog command end to end, as a user runs it: exit codes, output, files.

Most cases call `catdog.cli.main` in this process (the same code `catdog`
runs, without a fresh TensorFlow import each); the cases marked `real=True`
start the real command in a subprocess, so the process boundary (console
script, `python -m catdog`, exit status, stderr) is covered for each kind of
outcome: success, an argparse error and a catdog error.
"""

import contextlib
import io
import json
import os
import subprocess
import sys
import types

import pytest

from catdog import cli
from conftest import write_photo_folder


def catdog(*args, timeout=600, real=False):
    """Run `catdog ARGS`: an object with returncode, stdout and stderr."""
    args = [str(a) for a in args]
    if real:
        env = {**os.environ, "CATDOG_DEBUG": ""}
        return subprocess.run(
            [sys.executable, "-m", "catdog", *args], capture_output=True, text=True, timeout=timeout, env=env,
        )
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(args)
        except SystemExit as exit:  # argparse errors
            code = exit.code
    return types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()  # the whole stderr: no TensorFlow banner either
    assert len(lines) == 1 and lines[0].startswith("catdog"), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.slow  # a long run whose path the default suite also takes: `make test-slow` (keeps `make test` near 10 minutes)
def test_train_writes_the_run_folder(tmp_path):
    data = write_photo_folder(tmp_path / "photos", per_class=5)
    out = tmp_path / "run"
    result = catdog(
        "train", "--data", data, "--out", out, "--image-size", 32, "--weights", "none",
        "--epochs", 1, "--fine-tune-epochs", 1, "--batch-size", 4, "--quiet", real=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("model.keras", "history.json", "curves.png", "config.json", "data.json", "metrics.json",
                 "confusion_matrix.png", "roc_curve.png", "confidently_wrong.png", "report.html"):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_images"] == json.loads((out / "data.json").read_text())["counts"]["validation"] == 2
    assert sum(map(sum, metrics["confusion_matrix"])) == 2
    history = json.loads((out / "history.json").read_text())
    assert [e["stage"] for e in history["epochs"]] == [1, 2]
    assert history["switch_epoch"] == 1
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "checkpoint.keras").exists()

    again = catdog("train", "--data", data, "--out", out, "--weights", "none")
    assert_one_line_error(again, "already holds a finished run", "--overwrite")


def test_predict_prints_one_line_per_image_and_reports_bad_files(trained_model_file, tmp_path):
    photos = write_photo_folder(tmp_path / "p", per_class=2)
    (photos / "dogs" / "broken.jpg").write_text("nope")
    result = catdog("predict", trained_model_file, photos, tmp_path / "missing.jpg")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 4
    for line in lines:
        path, label, p = line.split("\t")
        assert os.path.exists(path) and label in ("cat", "dog") and 0.0 <= float(p) <= 1.0
    assert "broken.jpg" in result.stderr and "missing.jpg" in result.stderr


def test_predict_json_lines(trained_model_file, tmp_path):
    photos = write_photo_folder(tmp_path / "p", per_class=1)
    result = catdog("predict", trained_model_file, photos / "cats" / "cats.0.jpg", photos / "dogs", "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"].split("/")[-1] for r in rows] == ["cats.0.jpg", "dogs.0.jpg"]
    assert all(set(r) == {"path", "label", "p_dog", "probabilities"} for r in rows)
    assert all(r["probabilities"]["dog"] == r["p_dog"] for r in rows)
    assert all(abs(r["probabilities"]["cat"] + r["p_dog"] - 1) < 1e-5 for r in rows)


def test_predict_with_nothing_readable_fails(trained_model_file, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("text")
    result = catdog("predict", trained_model_file, bad)
    assert result.returncode == 2 and "no image could be read" in result.stderr


def test_evaluate_json(trained_model_file, session_photo_folder):
    result = catdog("evaluate", trained_model_file, "--data", session_photo_folder, "--json")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["n_images"] == 16 and metrics["n_skipped"] == 0
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["loss"] > 0


def test_evaluate_with_tta_writes_files_whose_numbers_match_the_json(trained_model_file, tmp_path):
    photos = write_photo_folder(tmp_path / "p", per_class=3)
    (photos / "cats" / "broken.jpg").write_text("nope")
    out = tmp_path / "eval"
    result = catdog("evaluate", trained_model_file, "--data", photos, "--json", "--tta", "--out", out)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.strip().splitlines()) == 1  # one JSON object
    metrics = json.loads(result.stdout)
    for key in ("accuracy", "auc", "log_loss", "loss", "confusion_matrix", "n_images", "n_skipped", "per_class"):
        assert key in metrics, key
    assert metrics["n_images"] == 6 and metrics["n_skipped"] == 1 and "broken.jpg" in result.stderr
    assert sum(map(sum, metrics["confusion_matrix"])) == 6
    assert set(metrics["per_class"]) == {"cat", "dog"}
    assert metrics["tta"]["without"].keys() == metrics["tta"]["with"].keys() == {"accuracy", "auc", "log_loss"}
    assert metrics["tta"]["with"]["accuracy"] == metrics["accuracy"]
    assert json.loads((out / "metrics.json").read_text()) == metrics
    report = (out / "report.html").read_text()
    assert json.dumps(metrics) in report.replace("<\\/", "</")
    for name in ("confusion_matrix.png", "roc_curve.png", "confidently_wrong.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow  # a long run whose path the default suite also takes: `make test-slow` (keeps `make test` near 10 minutes)
def test_predict_explain_writes_one_heat_map_figure_per_image(trained_model_file, tmp_path):
    photos = write_photo_folder(tmp_path / "p", per_class=2)
    (photos / "dogs" / "broken.jpg").write_text("nope")
    out = tmp_path / "explained"
    result = catdog("predict", trained_model_file, photos, "--json", "--explain", out)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 4 and "broken.jpg" in result.stderr
    figures = sorted(name for name in os.listdir(out) if not name.startswith("."))
    assert figures == sorted(f"{name}.{i}.gradcam.png" for name in ("cats", "dogs") for i in range(2))
    # a second run replaces catdog's own figures in the folder it made ...
    again = catdog("predict", trained_model_file, photos, "--json", "--explain", out)
    assert again.returncode == 0, again.stderr
    # ... but never writes into a folder of the user's: their files stay byte for byte
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "cats.0.gradcam.png").write_bytes(b"my own figure")
    refused = catdog("predict", trained_model_file, photos, "--explain", mine)
    assert refused.returncode == 2 and "--explain" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert sorted(os.listdir(mine)) == ["cats.0.gradcam.png"] and (mine / "cats.0.gradcam.png").read_bytes() == b"my own figure"
    for row in rows:
        assert os.path.dirname(row["explanation"]) == str(out)
        with open(row["explanation"], "rb") as handle:
            assert handle.read(4) == b"\x89PNG"


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["train", "--out", "x", "--epochs", "-1"], ["--epochs"]),
        (["train", "--out", "x", "--batch-size", "0"], ["--batch-size"]),
        (["train", "--out", "x", "--weights", "resnet"], ["--weights"]),
        (["train", "--data", "/no/such/folder", "--out", "{tmp}/r", "--weights", "none"], ["not found"]),
        (["train", "--data", "{tmp}/empty", "--out", "{tmp}/r", "--weights", "none"], ["no class sub-folders"]),
        (["train", "--data", "{tmp}/onlycats", "--out", "{tmp}/r", "--weights", "none", "--image-size", "32"], ["no dog images"]),
        (["predict", "{tmp}/nope.keras", "x.jpg"], ["not found"]),
        (["predict", "{tmp}/fake.keras", "x.jpg"], ["not a .keras model"]),
        (["evaluate", "{tmp}/fake.keras"], ["--data"]),
        (["frobnicate"], ["invalid choice"]),
        ([], ["required"]),
    ],
)
def test_bad_arguments_are_one_line_errors_with_exit_code_2(tmp_path, args, fragments):
    (tmp_path / "empty").mkdir()
    write_photo_folder(tmp_path / "onlycats", per_class=2, names=("cats",))
    (tmp_path / "fake.keras").write_text("hello")
    real = args[:1] == ["frobnicate"] or "not found" in fragments  # an argparse and a catdog error
    result = catdog(*[a.replace("{tmp}", str(tmp_path)) for a in args], timeout=120, real=real)
    assert_one_line_error(result, *fragments)


def test_console_script_is_installed():
    script = os.path.join(os.path.dirname(sys.executable), "catdog")
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "train" in result.stdout and "predict" in result.stdout


def test_only_tensorflows_start_up_banner_is_filtered_from_stderr():
    from catdog._startup_banner import without_banner

    text = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1796192871.613042    7044 port.cc:153] oneDNN custom operations are on. You may see\n"
        "E0000 something TensorFlow really wants to say\n"
        "W0000 cuda.cc:1] no GPU\n"
    )
    assert without_banner(text) == "E0000 something TensorFlow really wants to say\nW0000 cuda.cc:1] no GPU\n"


def test_the_banner_filter_waits_for_the_real_import_and_then_leaves():
    """A probe (`find_spec`) does not use it up; the import itself removes it from sys.meta_path."""
    code = (
        "import importlib.util, sys\n"
        "from catdog import _startup_banner\n"
        "_startup_banner.install()\n"
        "hooks = lambda: [f for f in sys.meta_path if type(f).__name__ == '_TensorFlowImportHook']\n"
        "assert importlib.util.find_spec('tensorflow') is not None and len(hooks()) == 1\n"
        "import tensorflow\n"
        "assert hooks() == [] and tensorflow.__spec__.loader.__class__.__name__ != '_QuietLoader'\n"
        "print(tensorflow.constant(2).numpy() * 21)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "42"
    assert "oneDNN custom operations" not in result.stderr and "absl::InitializeLog" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [["predict", "{tmp}/nope.keras", "x.jpg"], ["evaluate", "{tmp}/fake.keras", "--data", "{tmp}"]],
)
def test_a_wrong_model_path_is_answered_before_tensorflow_is_imported(tmp_path, args):
    (tmp_path / "fake.keras").write_text("hello")
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code = (
        "import sys\n"
        "from catdog import cli\n"
        f"status = cli.main({args!r})\n"
        "print(status, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["2", "False", "False"], result.stderr[-2000:]
    assert result.stderr.startswith("catdog: error: ") and len(result.stderr.strip().splitlines()) == 1
