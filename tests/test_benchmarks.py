"""The benchmark code runs end to end on a tiny input (its numbers mean nothing here)."""

import pytest

import json
import os
import subprocess
import sys

from conftest import ROOT


def bench(tmp_path, *args):
    out, raw = tmp_path / "BENCH.md", tmp_path / "bench.json"
    env = {**os.environ, "CATDOG_SHARED": str(tmp_path / "no-shared")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick",
         "--out", str(out), "--json", str(raw), "--work", str(tmp_path / "work"), *args],
        capture_output=True, text=True, timeout=900, env=env, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out, raw


@pytest.mark.slow  # a benchmark script or a long run: `make test-slow`
def test_quick_benchmark_writes_every_section_and_reruns_one(tmp_path):
    out, raw = bench(tmp_path)
    text = out.read_text()
    for heading in ("## 1–2. Training pipeline", "## 3. Time to", "## 4. Inference", "## 5. Memory", "## 6. Serving", "## GPU"):
        assert heading in text
    assert "synthetic JPEGs" in text
    data = json.loads(raw.read_text())
    for stage in ("stage1", "stage2"):
        assert data["pipeline"][stage]["efficiency"] > 0
        assert data["pipeline"][stage]["vs_tutorial_epoch_time"] > 0
    assert data["inference"]["latency_ms"]["median"] > 0
    assert "tflite_latency_ms" not in data["inference"]  # a 20 s conversion: full runs only
    assert "catdog default (pixel cache + feature cache)" in text
    rows = data["memory"]["rows"]
    assert all(row["exit_code"] == 0 and row["peak_rss_mib"] > 0 for row in rows.values())
    assert len(data["time_to_accuracy"]["catdog"]["epochs"]) == 2
    serving = data["serving"]
    assert set(serving["levels"]) == {"1", "4", "16"} and serving["errors"] == 0
    assert all(level["images_per_s"] > 0 and level["p99_ms"] >= level["p50_ms"] > 0 for level in serving["levels"].values())
    assert serving["raw_batched_per_s"]["median"] > 0 and serving["peak_rss_mib"] > 0
    assert serving["server_exit_code"] == 0

    for section in ("pipeline", "time_to_accuracy", "inference", "memory", "serving"):
        assert data["sections"][section]["command"] == "python benchmarks/bench.py --quick"

    # One section again: the others keep their numbers, and each says which run measured it.
    out, raw = bench(tmp_path, "--only", "inference")
    again = json.loads(raw.read_text())
    assert again["sections"]["inference"]["command"] == "python benchmarks/bench.py --quick --only inference"
    assert again["pipeline"] == data["pipeline"] and again["memory"] == data["memory"]
    assert again["serving"] == data["serving"]
    text = out.read_text()
    assert text.count("Measured by `python benchmarks/bench.py --quick` on") == 4
    assert text.count("Measured by `python benchmarks/bench.py --quick --only inference` on") == 1

    # Rendering again from the JSON changes nothing but the closing line.
    before = out.read_text()
    bench(tmp_path, "--render")
    assert out.read_text().rsplit("\n", 2)[0] == before.rsplit("\n", 2)[0]
