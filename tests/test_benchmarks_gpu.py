"""benchmarks/gpu.py runs on a tiny input, on JAX, with TensorFlow made unimportable.

GPU machines lent to this project carry JAX but no TensorFlow: the script must
run catdog's model and stage switch there, and write a row per precision.
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.skipif(
    __import__("importlib.util").util.find_spec("jax") is None, reason='needs JAX (pip install "catdog[jax]")'
)

# TensorFlow made unimportable the way a machine without it is: a finder that
# answers ModuleNotFoundError, and no "tensorflow" key in sys.modules. The
# shortcut sys.modules["tensorflow"] = None is not that: Keras' in_tf_graph()
# sees the key, takes TensorFlow for imported, and its random layers (colour
# jitter, greyscale) then break JAX's stage switch, which no real machine does.
WITHOUT_TENSORFLOW = (
    "import importlib.abc, runpy, sys\n"
    "class NoTensorFlow(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path, target=None):\n"
    "        if name.split('.')[0] == 'tensorflow':\n"
    "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
    "sys.meta_path.insert(0, NoTensorFlow()); sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


@pytest.mark.slow  # a benchmark script or a long run: `make test-slow`
def test_gpu_script_trains_both_stages_in_both_precisions_without_tensorflow(tmp_path):
    out = tmp_path / "gpu.md"
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "CATDOG_SHARED": str(tmp_path / "none")}
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_TENSORFLOW, str(ROOT / "benchmarks" / "gpu.py"), "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=900, env=env, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    figures = json.loads(out.with_suffix(".json").read_text())
    assert figures["versions"]["backend"] == "jax" and "tensorflow" not in figures["versions"]
    assert figures["command"] == "KERAS_BACKEND=jax python benchmarks/gpu.py --quick"
    assert [(row["batch"], row["precision"]) for row in figures["rows"]] == [(4, "float32"), (4, "mixed_float16")]
    for row in figures["rows"]:
        assert len(row["stage 1"]) == len(row["stage 2"]) == 1 and min(row["stage 1"] + row["stage 2"]) > 0
    table = [line for line in out.read_text().splitlines() if line.startswith("| 4 |")]
    assert [line.split(" | ")[1] for line in table] == ["float32", "mixed_float16"]
