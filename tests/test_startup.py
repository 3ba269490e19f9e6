"""`import catdog` is instant, the command line answers --help without TensorFlow,
and catdog's Keras classes are still registered whichever way Keras gets imported.

Each case runs in a fresh interpreter: what matters is what an import does
to a process that has not imported anything yet.
"""

import json
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT, tiny_model

HEAVY = ("tensorflow", "keras", "jax", "tensorflow_datasets", "numpy", "matplotlib", "PIL")


def python(code, timeout=300):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("startup") / "tiny.keras"
    tiny_model().save(path)
    return path


def test_help_and_argument_errors_import_no_tensorflow_keras_or_jax_yet_keras_finds_catdog_later(saved_model):
    """The console script's process: --help and bad options without TensorFlow;
    then `import keras` (catdog imported first) registers catdog's classes."""
    code = f"""
import contextlib, io, json, sys
import catdog.cli
results = []
for argv in (["--help"], ["train", "--help"], ["predict", "--help"], ["evaluate", "--help"], ["export", "--help"],
             ["train", "--out", "x", "--epochs", "-1"], ["frobnicate"], ["export", "m.keras", "--format", "gif", "--out", "x"],
             ["train", "--out", "x", "--verbose", "3"]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = catdog.cli.main(argv) or 0  # a bad value: TrainConfig's error, returned as 2
        except SystemExit as exit:
            code = exit.code
    results.append([argv, code, out.getvalue(), err.getvalue()])
heavy = [m for m in {HEAVY!r} if m in sys.modules]
import keras
model = keras.saving.load_model({str(saved_model)!r})
loaded = [type(model).__module__, type(model).__name__, model.stage]
print(json.dumps({{"results": results, "heavy": heavy, "loaded": loaded}}))
"""
    done = python(code)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["heavy"] == []
    assert report["loaded"] == ["catdog.model", "CatDogClassifier", 1]
    for argv, code, out, err in report["results"]:
        if "--help" in argv:
            assert code == 0 and "usage: catdog" in out, (argv, err)
        else:
            assert code == 2 and len(err.strip().splitlines()) == 1 and "error" in err, (argv, err)
    train_help = next(out for argv, _, out, _ in report["results"] if argv == ["train", "--help"])
    for option in ("--config", "--verbose", "--quiet", "--fine-tune-at", "--distribute"):
        assert option in train_help
    assert "100 for MobileNetV2" in train_help and "(default: 2e-05)" in train_help  # from catdog.defaults


def test_import_catdog_alone_imports_no_keras_but_lists_the_public_api():
    done = python(
        "import sys, catdog\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'jax') if m in sys.modules))\n"
        "print(sorted(catdog.__all__) == sorted(n for n in dir(catdog) if n in catdog.__all__))\n"
        "from catdog import TrainConfig, DataError\n"
        "print(TrainConfig().fine_tune_at, 'keras' in sys.modules)\n"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # fine_tune_at None: the backbone's own default (100 for MobileNetV2), see catdog.backbones
    assert done.stdout.splitlines() == ["[]", "True", "None False"]


def test_catdog_help_is_fast():
    """The README's figure; generous bound here, as the machine is shared."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "catdog", "--help"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - started
    assert done.returncode == 0 and "train" in done.stdout
    assert seconds < 3.0, seconds


def test_load_model_when_keras_is_first_imported_inside_a_catdog_import(saved_model):
    """Registration waits until catdog.layers has finished importing (it imports keras
    half-way). `import catdog` then `import keras` is the --help test's process; Keras
    imported first is test_saving's fresh-process test."""
    done = python(
        "import catdog.layers\nimport keras\n"
        f"model = keras.saving.load_model({str(saved_model)!r})\n"
        "import sys\n"
        "print(type(model).__module__, type(model).__name__, model.stage,\n"
        "      [type(f).__name__ for f in sys.meta_path if type(f).__module__.startswith('catdog')])\n"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "catdog.model CatDogClassifier 1 []"  # hook gone once done
