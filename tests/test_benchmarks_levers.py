"""benchmarks/levers.py runs on a tiny input and writes one row per lever."""

import pytest

import os
import subprocess
import sys

from conftest import ROOT


@pytest.mark.slow  # a benchmark script or a long run: `make test-slow`
def test_levers_script_writes_a_row_per_lever(tmp_path):
    out = tmp_path / "levers.md"
    env = {**os.environ, "CATDOG_SHARED": str(tmp_path / "no-shared")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "levers.py"), "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=900, env=env, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "---" not in line][1:]
    levers = [row.split(" | ")[0].lstrip("| ") for row in rows]
    assert levers == [
        "augmentation (flip, rotation, zoom)",
        "BatchNorm folded into the convolutions, fine-tuning step",
        "BatchNorm folded into the convolutions, forward pass",
        "XLA (`jit_compile=True`)",
        "mixed precision (float16 compute), fine-tuning step",
        "JPEG decode of 256x192 photos",
    ]
    for row in rows:
        ratio = float(row.split(" | ")[5])
        assert ratio > 0
