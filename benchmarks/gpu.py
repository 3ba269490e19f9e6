"""Training images/second on a GPU: stage 1 and stage 2, float32 and mixed precision.

    KERAS_BACKEND=jax python benchmarks/gpu.py [--batch-sizes 32 128] [--quick]

One `fit()` per setting, as `catdog train` runs it: `CatDogClassifier` with
`FineTuneSwitch` moving it to stage 2 half-way. The images are ready-made
uint8 tensors in memory, so this is the model's own ceiling on the card (the
tf.data pipeline is measured by `bench.py`). The first epoch of each stage
compiles and is not counted. Runs on any backend; GPU machines lent to this
project carry JAX but not TensorFlow, so without TensorFlow the script loads
catdog's model code (keras.ops only) without the package's tf.data half.
Writes a Markdown fragment to benchmarks/results/gpu.md, which `bench.py`
includes in BENCHMARKS.md, and the raw figures beside it as gpu.json.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time
import types

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

SHARED = pathlib.Path(os.environ.get("CATDOG_SHARED", ROOT.parent / "shared"))
if "KERAS_HOME" not in os.environ and (SHARED / "keras" / "models").is_dir():
    os.environ["KERAS_HOME"] = str(SHARED / "keras")


def load_model_code():
    """(CatDogClassifier, FineTuneSwitch), with or without TensorFlow installed."""
    try:
        import catdog  # noqa: F401
    except ImportError as error:
        if "tensorflow" not in str(error):
            raise
        for name in [m for m in sys.modules if m == "catdog" or m.startswith("catdog.")]:
            del sys.modules[name]
        package = types.ModuleType("catdog")
        package.__path__ = [str(ROOT / "catdog")]
        sys.modules["catdog"] = package
    from catdog.callbacks import FineTuneSwitch
    from catdog.model import CatDogClassifier

    return CatDogClassifier, FineTuneSwitch


def gpu_name():
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30,
        ).stdout.strip()
        return out.splitlines()[0] if out else "none"
    except (OSError, subprocess.SubprocessError):
        return "none"


def versions():
    import keras

    found = {"python": platform.python_version(), "keras": keras.__version__, "backend": keras.backend.backend()}
    if found["backend"] == "jax":
        import jax

        found["jax"] = jax.__version__
        found["devices"] = ", ".join(str(d) for d in jax.devices())
    elif found["backend"] == "tensorflow":
        import tensorflow as tf

        found["tensorflow"] = tf.__version__
    return found


def run_one(classifier, switch, images, labels, batch_size, epochs, mixed, weights):
    """{stage: [images/s per measured epoch]} of one two-stage fit()."""
    import keras

    import common

    timer = common.EpochTimer()
    model = classifier(image_size=images.shape[1], weights=weights, mixed_precision=mixed)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    per_stage = epochs + 1  # + the compiling first epoch
    model.fit(
        images, labels, batch_size=batch_size, epochs=2 * per_stage, shuffle=True, verbose=0,
        callbacks=[switch(per_stage, verbose=0), timer],
    )
    rates = [len(images) / s for s in timer.seconds]
    return {
        "stage 1": rates[1:per_stage], "stage 2": rates[per_stage + 1:],
        "compile epochs s": [timer.seconds[0], timer.seconds[per_stage]],
        "final loss": float(timer.logs[-1].get("loss", float("nan"))),
    }


def render(results):
    v = results["versions"]
    stack = ", ".join(f"{k} {v[k]}" for k in ("keras", "jax", "tensorflow") if k in v)
    lines = [
        "## GPU",
        "",
        f"Measured by `{results['command']}` on {results['date']} ({results['minutes']:.1f} min): "
        f"{results['gpu']}; {stack}, backend {v['backend']}, Python {v['python']}; "
        f"{results['images']} in-memory {results['size']}x{results['size']} images per epoch, "
        f"{results['weights']}; one `fit()` per row with `FineTuneSwitch` half-way; "
        f"medians (min-max) of {results['epochs']} epochs per stage after each stage's compiling epoch.",
        "",
        "| batch | precision | stage 1 images/s | stage 2 images/s | compiling epochs s (stage 1, 2) |",
        "|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        cells = []
        for stage in ("stage 1", "stage 2"):
            r = row[stage]
            cells.append(f"{statistics.median(r):.0f} ({min(r):.0f}–{max(r):.0f})")
        compile_s = ", ".join(f"{s:.0f}" for s in row["compile epochs s"])
        lines.append(f"| {row['batch']} | {row['precision']} | {cells[0]} | {cells[1]} | {compile_s} |")
    for batch in sorted({row["batch"] for row in results["rows"]}):
        pair = {row["precision"]: row for row in results["rows"] if row["batch"] == batch}
        if len(pair) == 2:
            ratios = [
                statistics.median(pair["mixed_float16"][s]) / statistics.median(pair["float32"][s])
                for s in ("stage 1", "stage 2")
            ]
            lines.append("")
            lines.append(
                f"Batch {batch}: mixed precision / float32 images/s = {ratios[0]:.2f} (stage 1), {ratios[1]:.2f} (stage 2)."
            )
    lines += [
        "",
        "The images wait in host memory as NumPy arrays and Keras batches them on the host, as `fit()` does "
        "with arrays; an epoch lasts well under a second, so part of each figure is that host-side work, not the "
        "card. The tf.data pipeline (decode, resize, caches) is not in these rows: the GPU machine had no TensorFlow.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--images", type=int, default=2048, help="images per epoch")
    parser.add_argument("--epochs", type=int, default=4, help="measured epochs per stage")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for tests")
    parser.add_argument("--out", default=str(HERE / "results" / "gpu.md"))
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_sizes, args.images, args.epochs, args.size = [4], 8, 1, 32
    started = time.perf_counter()
    import numpy as np

    classifier, switch = load_model_code()
    from catdog.backbones import cached_imagenet_weights

    weights = "imagenet" if not args.quick and cached_imagenet_weights() is not None else None
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, (args.images, 1)).astype("float32")
    given = list(sys.argv[1:] if argv is None else argv)
    if "--out" in given:  # where the table goes is not part of what it measured
        del given[given.index("--out"):given.index("--out") + 2]
    command = " ".join(["python benchmarks/gpu.py", *given])
    if os.environ.get("KERAS_BACKEND"):
        command = f"KERAS_BACKEND={os.environ['KERAS_BACKEND']} {command}"
    results = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "command": command, "gpu": gpu_name(),
        "versions": versions(), "images": args.images, "size": args.size, "epochs": args.epochs,
        "weights": "ImageNet weights" if weights else "random weights", "rows": [],
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for batch in args.batch_sizes:
        for mixed in (False, True):
            precision = "mixed_float16" if mixed else "float32"
            print(f"[gpu] batch {batch}, {precision}", flush=True)
            row = run_one(classifier, switch, images, labels, batch, args.epochs, mixed, weights)
            row.update(batch=batch, precision=precision)
            results["rows"].append(row)
            print(f"[gpu]   {json.dumps(row)}", flush=True)
            # Written after every row: a run cut short still leaves its rows.
            results["minutes"] = (time.perf_counter() - started) / 60
            out.write_text(render(results))
            out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
