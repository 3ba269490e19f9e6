"""The library core loads without TensorFlow on the JAX backend."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT

CORE = ("catdog", "catdog.layers", "catdog.losses", "catdog.model", "catdog.callbacks", "catdog.finetune", "catdog.backbones")


def test_core_imports_no_tensorflow_on_jax():
    pytest.importorskip("jax")
    code = (
        "import sys, keras\n"
        + "".join(f"import {name}\n" for name in CORE)
        + "import catdog\n"
        "assert keras.backend.backend() == 'jax'\n"
        "assert keras.saving.get_registered_object('catdog>CatDogClassifier') is not None\n"
        "print('tensorflow' in sys.modules)\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"
