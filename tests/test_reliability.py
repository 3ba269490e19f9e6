"""Nothing lost, nothing run that should not be: atomic artifacts, safe loading,
run folders that are refused, resumed or overwritten on purpose, and arguments
that are one-line errors."""

import ast
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import zipfile

import keras
import pytest

import catdog
from catdog import artifacts
from catdog.training.distribute import save_model
from catdog.training.run_folder import clear_run, prepare_run_dir, run_status
from conftest import ROOT, assert_one_line_error, run_cli, tiny_model, write_photo_folder


def leftovers(folder):
    return sorted(p.name for p in pathlib.Path(folder).iterdir() if ".tmp" in p.name)


# --- atomic artifacts ---------------------------------------------------------


@pytest.fixture(scope="module")
def small_model():
    return tiny_model(augmentation=False)


@pytest.mark.parametrize("failure", [OSError("No space left on device"), KeyboardInterrupt()])
def test_a_failure_while_saving_leaves_the_previous_model_intact(small_model, tmp_path, failure):
    path = tmp_path / "model.keras"
    save_model(small_model, str(path))
    good = path.read_bytes()

    class HalfSaved:
        def save(self, temporary):
            with open(temporary, "wb") as handle:
                handle.write(good[: len(good) // 2])
            raise failure

    with pytest.raises(type(failure)):
        save_model(HalfSaved(), str(path))
    assert path.read_bytes() == good
    assert isinstance(catdog.load_model(str(path)), catdog.CatDogClassifier)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_artifacts_get_the_permissions_of_any_new_file(small_model, tmp_path, umask):
    previous = os.umask(umask)
    try:
        artifacts.write_json(str(tmp_path / "history.json"), {"epochs": []})
        save_model(small_model, str(tmp_path / "model.keras"))
    finally:
        os.umask(previous)
    for name in ("history.json", "model.keras"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_a_failure_while_writing_json_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "history.json"
    artifacts.write_json(str(path), {"epochs": [1, 2]})

    def no_sync(descriptor):
        raise OSError("I/O error")

    monkeypatch.setattr(os, "fsync", no_sync)
    with pytest.raises(OSError):
        artifacts.write_json(str(path), {"epochs": [1, 2, 3]})
    assert json.loads(path.read_text()) == {"epochs": [1, 2]}
    assert leftovers(tmp_path) == []


KILLED_WRITER = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("artifacts", sys.argv[1])
artifacts = importlib.util.module_from_spec(spec)
spec.loader.exec_module(artifacts)

def slow(temporary):
    with open(temporary, "w") as handle:
        handle.write("half of the new con")
        handle.flush()
        print("writing", flush=True)
        time.sleep(600)

artifacts.replace_atomically(sys.argv[2], slow)
"""


def test_a_kill_while_saving_leaves_the_previous_file_and_the_next_run_cleans_up(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".catdog").write_text('{"kind": "run"}')
    target = run_dir / "history.json"
    target.write_text('{"epochs": []}\n')
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(ROOT / "catdog" / "artifacts.py"), str(target)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout.readline().strip() == "writing"
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    assert target.read_text() == '{"epochs": []}\n'
    assert len(leftovers(run_dir)) == 1  # the half-written temporary, under another name
    assert prepare_run_dir(catdog.TrainConfig(out=str(run_dir))) is None
    assert leftovers(run_dir) == [] and target.exists()


#: Calls that write a file; inside catdog they must write a temporary that
#: catdog.artifacts then moves into place.
WRITING_METHODS = {"save", "savefig", "save_weights", "export", "write_text", "write_bytes", "dump", "to_csv"}
IN_MEMORY_TARGETS = ("buffer", "stream", "handle")
#: Writes that are not artifacts, with the reason.
NOT_ARTIFACTS = {
    ("catdog/training/distribute.py", "open(copy, 'wb')"): "a scratch copy of a checkpoint in a temporary folder",
}


def writes_outside_artifacts(source):
    """(line, call) of each file write in `source` that may bypass catdog.artifacts.

    A tripwire, not a proof: a write is accepted when its destination is
    `temporary` (what `replace_atomically` hands out), an in-memory buffer,
    or a parameter of the enclosing function (the caller picks the path, and
    `replace_atomically(path, lambda temporary: helper(temporary))` is how
    catdog calls such helpers).
    """
    found = []

    def accepted(argument, parameters):
        return isinstance(argument, ast.Name) and (
            argument.id == "temporary" or argument.id.endswith(IN_MEMORY_TARGETS) or argument.id in parameters
        )

    def visit(node, parameters):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            arguments = node.args
            parameters = parameters | {a.arg for a in arguments.posonlyargs + arguments.args + arguments.kwonlyargs}
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name == "open":
                modes = [a.value for a in node.args[1:2] if isinstance(a, ast.Constant)]
                modes += [k.value.value for k in node.keywords if k.arg == "mode" and isinstance(k.value, ast.Constant)]
                writes = any(set(str(m)) & set("wax+") for m in modes)
                if writes and not (node.args and accepted(node.args[0], parameters)):
                    found.append((node.lineno, ast.unparse(node)))
            elif name in WRITING_METHODS and isinstance(func, ast.Attribute):
                via_artifacts = isinstance(func.value, ast.Name) and func.value.id == "artifacts"
                if not via_artifacts and not any(accepted(a, parameters) for a in node.args):
                    found.append((node.lineno, ast.unparse(node)))
        for child in ast.iter_child_nodes(node):
            visit(child, parameters)

    visit(ast.parse(source), frozenset())
    return found


def test_every_artifact_is_written_through_catdog_artifacts():
    package = ROOT / "catdog"
    offenders = {}
    for path in sorted(package.rglob("*.py")):
        if path.name == "artifacts.py":
            continue
        module = str(path.relative_to(ROOT))
        found = [(line, call) for line, call in writes_outside_artifacts(path.read_text()) if (module, call) not in NOT_ARTIFACTS]
        if found:
            offenders[module] = found
    assert offenders == {}, "write these through catdog.artifacts (temporary file, then rename)"


def test_the_writer_check_catches_a_direct_write():
    direct = "model.save('model.keras')\nopen(os.path.join(d, 'x.json'), 'w').write(x)\njson.dump(v, open(p, 'w'))\n"
    assert len(writes_outside_artifacts(direct)) == 4  # json.dump's open counted too
    assert not writes_outside_artifacts(
        "open(p).read()\nmodel.save(temporary)\nimage.save(buffer)\n"
        "def helper(path):\n    open(path, 'wb').write(b'')\n"
        "replace_atomically(out, lambda temporary: helper(temporary))\n"
    )


# --- safe loading ---------------------------------------------------------------


def test_a_keras_file_with_a_lambda_is_refused_without_running_it(tmp_path, capsys):
    marker = tmp_path / "ran"
    side_effect = eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]")  # code in the file
    model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(side_effect)])
    path = tmp_path / "lambda.keras"
    model.save(path)
    marker.unlink(missing_ok=True)  # building the model above ran it once
    with pytest.raises(catdog.ModelFileError, match="cannot load"):
        catdog.load_model(str(path))
    assert not marker.exists()
    code, _, err = run_cli(capsys, "predict", path, tmp_path / "x.jpg")
    assert_one_line_error(code, err, "cannot load", "Lambda")
    assert not marker.exists()
    keras.saving.load_model(path, safe_mode=False)  # what safe mode prevents:
    assert marker.exists()  # the file's code ran


@pytest.mark.parametrize("damage", ["truncated", "garbage weights", "a folder"])
def test_a_corrupt_model_file_is_a_one_line_error(trained_model_file, tmp_path, capsys, damage):
    path = tmp_path / "model.keras"
    good = trained_model_file.read_bytes()
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "garbage weights":
        with zipfile.ZipFile(trained_model_file) as source, zipfile.ZipFile(path, "w") as target:
            for item in source.infolist():
                data = source.read(item)
                target.writestr(item, b"\x00" * len(data) if item.filename.endswith(".h5") else data)
    else:
        path.mkdir()
    code, _, err = run_cli(capsys, "predict", path, tmp_path / "x.jpg")
    assert_one_line_error(code, err, str(path))
    code, _, err = run_cli(capsys, "evaluate", path, "--data", tmp_path)
    assert_one_line_error(code, err, str(path))


# --- run folders ----------------------------------------------------------------


def fake_unfinished_run(run_dir, completed=1, checkpoint=True, **config):
    """What a run killed after `completed` epochs leaves (without training one)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / ".catdog").write_text('{"kind": "run"}')  # the folder is catdog's
    settings = catdog.TrainConfig(out=str(run_dir), **config).to_dict()
    (run_dir / "config.json").write_text(json.dumps(settings))
    name = f"checkpoint-epoch{completed}.keras"
    (run_dir / "run_state.json").write_text(
        json.dumps({"completed_epochs": completed, "finished": False, "checkpoint": name})
    )
    if checkpoint:
        (run_dir / name).write_bytes(b"PK")


TRAIN = ["--weights", "none", "--image-size", 32, "--epochs", 1, "--fine-tune-epochs", 1]


def test_an_unfinished_run_with_other_settings_is_refused(tmp_path, capsys):
    data = str(write_photo_folder(tmp_path / "photos", per_class=2))
    fake_unfinished_run(tmp_path / "run", data=data, weights=None, image_size=32, epochs=1, fine_tune_epochs=1)
    assert run_status(str(tmp_path / "run")) == "unfinished"
    code, _, err = run_cli(capsys, "train", "--data", data, "--out", tmp_path / "run", *TRAIN, "--epochs", 2)
    assert_one_line_error(code, err, "unfinished run with other settings", "epochs: 1 -> 2", "--overwrite")


@pytest.mark.parametrize(
    "setup, args, fragments",
    [
        ("empty", ["--resume"], ["no unfinished run"]),
        ("finished", ["--resume"], ["already finished"]),
        ("finished", [], ["already holds a finished run", "--overwrite"]),
        ("unfinished", ["--resume", "--overwrite"], ["contradict"]),
        ("broken", [], ["checkpoint is missing", "--overwrite"]),
        ("file", [], ["not a folder"]),
    ],
)
def test_run_folders_are_refused_with_what_to_do(tmp_path, capsys, setup, args, fragments):
    run_dir = tmp_path / "run"
    if setup == "finished":
        run_dir.mkdir()
        (run_dir / ".catdog").write_text('{"kind": "run"}')
        (run_dir / "run_state.json").write_text('{"finished": true}')
        (run_dir / "model.keras").write_bytes(b"PK")
    elif setup in ("unfinished", "broken"):
        fake_unfinished_run(run_dir, checkpoint=setup == "unfinished")
    elif setup == "file":
        run_dir.write_text("not a folder")
    code, _, err = run_cli(capsys, "train", "--data", tmp_path, "--out", run_dir, *TRAIN, *args)
    assert_one_line_error(code, err, *fragments)


def test_overwrite_removes_the_old_run_and_nothing_else(tmp_path):
    run_dir = tmp_path / "run"
    fake_unfinished_run(run_dir, completed=2)
    for name in (
        "checkpoint-epoch1.keras", "history.json", "skipped.txt", ".model.keras.x1y2z3a4.tmp.keras", "notes.txt",
        "metrics.json", "report.html", "roc_curve.png",
        # the user's, though they look like catdog's
        ".draft.tmp", ".notes.txt.x1y2z3a4.tmp.txt", "checkpoint-epoch-best.keras",
    ):
        (run_dir / name).write_text("x")
    assert prepare_run_dir(catdog.TrainConfig(out=str(run_dir), overwrite=True)) is None
    assert sorted(os.listdir(run_dir)) == [
        ".catdog", ".draft.tmp", ".notes.txt.x1y2z3a4.tmp.txt", "checkpoint-epoch-best.keras", "notes.txt",
    ]
    clear_run(str(run_dir))  # idempotent
    assert run_status(str(run_dir)) == "empty"


# --- arguments ------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--lr", "inf"], ["--lr", "positive number"]),
        (["--lr", "nan"], ["--lr"]),
        (["--fine-tune-lr", "0"], ["--fine-tune-lr"]),
        (["--seed", "-1"], ["--seed"]),
        (["--seed", str(2**32)], ["--seed"]),
        (["--epochs", "0", "--fine-tune-epochs", "0"], ["nothing to train"]),
        (["--image-size", "8"], ["image-size must be at least 32"]),
        (["--limit", "0"], ["--limit"]),
        (["--batch-size", "-4"], ["--batch-size"]),
        (["--epochs", "two"], ["--epochs", "not a number"]),
        (["--weights", "/no/such/weights.h5"], ["--weights"]),
        (["--val-data", "{tmp}/no-such-folder"], ["not found"]),
        (["--val-split", "0"], ["val_split"]),
        (["--fine-tune-at", "999"], ["fine_tune_at", "0..153"]),
        (["--fine-tune-at", "no_such_layer"], ["no layer named"]),
    ],
)
def test_bad_train_arguments_are_one_line_errors(tmp_path, capsys, args, fragments):
    data = write_photo_folder(tmp_path / "photos", per_class=2)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, _, err = run_cli(capsys, "train", "--data", data, "--out", tmp_path / "run", *TRAIN, *args)
    assert_one_line_error(code, err, *fragments)


# --- the end of a run ---------------------------------------------------------


@pytest.mark.slow  # a benchmark script or a long run: `make test-slow`
def test_a_run_killed_while_writing_its_report_is_unfinished_and_resumes_to_a_report(tmp_path, monkeypatch):
    """The report is part of the run: until it is written the run is not
    finished, its last checkpoint is kept, and `--resume` writes it."""
    import catdog.training.train

    data = write_photo_folder(tmp_path / "photos", per_class=4)
    config = catdog.TrainConfig(
        data=str(data), out=str(tmp_path / "run"), image_size=32, alpha=0.35, weights=None,
        epochs=1, fine_tune_epochs=1, batch_size=4, verbose=0,
    )
    real_report = catdog.training.train.write_run_report

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(catdog.training.train, "write_run_report", killed)
    with pytest.raises(KeyboardInterrupt):
        catdog.train(config)
    run_dir = tmp_path / "run"
    assert run_status(str(run_dir)) == "unfinished"
    assert json.loads((run_dir / "run_state.json").read_text())["completed_epochs"] == 2
    assert (run_dir / "checkpoint-epoch2.keras").is_file()
    assert not (run_dir / "report.html").exists()

    monkeypatch.setattr(catdog.training.train, "write_run_report", real_report)
    result = catdog.train(config, resume=True)
    assert result.resumed_from == 2
    assert run_status(str(run_dir)) == "finished"
    assert (run_dir / "report.html").stat().st_size > 1000
    assert json.loads((run_dir / "metrics.json").read_text())["n_images"] > 0
    assert not list(run_dir.glob("checkpoint-*.keras"))
