"""`make bench`: where catdog's time goes, against the ceiling and the usual way.

Runs every figure of the speed issue in one run and writes BENCHMARKS.md:

1. pipeline efficiency: catdog's pipeline from JPEG files vs in-memory tensors;
2. catdog vs the TensorFlow tutorial's pipeline and model, epoch time;
3. time to 98.5% validation accuracy, catdog's default recipe vs the tutorial's;
4. inference: `predict` on files vs the raw model, and single-image latency;
5. peak memory and seconds per image at 2,000 and 8,000 training images;
6. serving: `catdog serve` under 1, 4 and 16 concurrent clients (serve_bench.py).

Uses ../shared (real ImageNet weights, real photographs) when present, else
synthetic JPEGs it writes itself. `--quick` shrinks everything to seconds
(the test suite runs that); numbers from it mean nothing.
"""

import argparse
import datetime
import json
import os
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import common  # noqa: E402
import serve_bench  # noqa: E402

FULL = dict(
    image_size=224, batch_size=32, pipeline_per_class=160, pipeline_epochs=4,
    predict_images=1000, latency_calls=100, tflite_latency=True, memory_sizes=(2000, 8000), memory_image_size=96, memory_photo_size=(375, 500), memory_val_per_class=25,
    target=0.985, repeats=3, recipe=None, tutorial_epochs=(10, 10),
)
QUICK = dict(
    image_size=32, batch_size=4, pipeline_per_class=4, pipeline_epochs=2,
    predict_images=8, latency_calls=5, tflite_latency=False, memory_sizes=(16, 32), memory_image_size=32, memory_photo_size=(48, 64), memory_val_per_class=4,
    target=0.985, repeats=1, recipe=(1, 1), tutorial_epochs=(1, 1),
)


#: --only names -> keys of the results
SECTIONS = {"pipeline": "pipeline", "tta": "time_to_accuracy", "inference": "inference", "memory": "memory", "serving": "serving"}


def _previous_results(path, p, data):
    """The last run's results, if they were measured on the same data and sizes."""
    try:
        with open(path) as handle:
            previous = json.load(handle)
    except (OSError, ValueError):
        return {}
    shared = ("image_size", "batch_size", "target")
    if previous.get("data") != data or any(previous.get("params", {}).get(k) != p[k] for k in shared):
        return {}
    sections = previous.setdefault("sections", {})
    for key in SECTIONS.values():  # results from before sections were recorded
        if key in previous and key not in sections:
            sections[key] = {"command": "make bench", "date": previous["date"]}
    return previous


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- 1 and 2: pipeline efficiency, and against the tutorial ------------------

#: Stage 1 as `catdog.train` runs it: pixel cache and stage-1 feature cache.
DEFAULT_STAGE_ONE = "catdog default (pixel cache + feature cache)"


def bench_pipeline(p, train_dir, work, weights):
    import keras
    import numpy as np
    import tensorflow as tf

    import catdog
    from catdog.data.folders import list_labelled_files
    from catdog.data.screening import inspect_files
    from catdog.data.pipeline import manifest_dataset
    from catdog.training.feature_cache import FeatureCache
    import tutorial

    folder = common.subset_folder(train_dir, work / "pipeline", p["pipeline_per_class"])
    files = list_labelled_files(str(folder))
    manifest = inspect_files(files.paths, files.labels, p["image_size"])
    n = len(manifest)
    images = np.concatenate([x.numpy() for x, _ in manifest_dataset(manifest, p["image_size"], 64)])
    labels = np.asarray(manifest.labels, np.float32)

    def in_memory():
        return (
            tf.data.Dataset.from_tensor_slices((images, labels))
            .shuffle(n, seed=0).batch(p["batch_size"]).prefetch(tf.data.AUTOTUNE)
        )

    def catdog_ds(cache):
        return lambda: manifest_dataset(manifest, p["image_size"], p["batch_size"], shuffle=True, seed=0, cache=cache)

    def catdog_model(stage):
        keras.utils.set_random_seed(0)
        model = catdog.CatDogClassifier(image_size=p["image_size"], weights=weights)
        if stage == 2:
            model.unfreeze_backbone()
        catdog.compile_for_stage_one(model, 1e-3 if stage == 1 else 1e-5)
        return model

    def tutorial_setup(stage):
        keras.utils.set_random_seed(0)
        model, base = tutorial.tutorial_model(p["image_size"], weights)
        if stage == 2:
            tutorial.start_fine_tuning(model, base)
        return model

    def catdog_default_model(stage):
        # What `catdog.train` runs in stage 1: the stage-1 feature cache on
        # (attached by hand: it must outlive the one-epoch fit() calls here).
        model = catdog_model(stage)
        model.attach_feature_cache(FeatureCache(2 * n, model.feature_width))
        return model

    pipelines = {
        "catdog pipeline (cache auto)": (catdog_ds("auto"), catdog_model),
        "catdog pipeline (no cache)": (catdog_ds("none"), catdog_model),
        "in-memory tensors (ceiling)": (in_memory, catdog_model),
        "TF tutorial pipeline + model": (
            lambda: tutorial.tutorial_dataset(str(folder), p["image_size"], p["batch_size"]),
            tutorial_setup,
        ),
    }
    by_stage = {
        1: {DEFAULT_STAGE_ONE: (catdog_ds("auto"), catdog_default_model), **pipelines},
        2: pipelines,
    }
    rows = {}
    for stage, variants in by_stage.items():
        # One model per kind and stage (its train step is traced once) and one
        # dataset per variant (a cache lives in its dataset). A first epoch of
        # each variant warms up; then the variants take turns, one epoch each,
        # so that a slow spell of this shared machine hits them all alike.
        built, datasets, seconds, first = {}, {}, {name: [] for name in variants}, {}
        for turn in range(p["pipeline_epochs"]):
            for name, (make_data, make_model) in variants.items():
                if turn == 0:
                    log(f"pipeline: stage {stage}, {name}")
                    if make_model not in built:
                        built[make_model] = make_model(stage)
                    datasets[name] = make_data()
                timer = common.EpochTimer()
                built[make_model].fit(datasets[name], epochs=1, callbacks=[timer], shuffle=False, verbose=0)
                if turn == 0:
                    first[name] = timer.seconds[0]
                else:
                    seconds[name].append(timer.seconds[0])
        for name in variants:
            rows[(stage, name)] = {
                "first_epoch_s": first[name],
                "epoch_s": common.stats(seconds[name]),
                "images_per_s": common.stats([n / s for s in seconds[name]]),
            }
        del built
    results = {"n_images": n, "rows": {f"stage {s}: {k}": v for (s, k), v in rows.items()}}
    for stage in (1, 2):
        ceiling = rows[(stage, "in-memory tensors (ceiling)")]["images_per_s"]["median"]
        ours = rows[(stage, "catdog pipeline (cache auto)")]
        plain = rows[(stage, "catdog pipeline (no cache)")]
        tut = rows[(stage, "TF tutorial pipeline + model")]
        default = rows[(stage, DEFAULT_STAGE_ONE)] if stage == 1 else ours
        results[f"stage{stage}"] = {
            "efficiency": ours["images_per_s"]["median"] / ceiling,
            "efficiency_no_cache": plain["images_per_s"]["median"] / ceiling,
            "vs_tutorial_epoch_time": default["epoch_s"]["median"] / tut["epoch_s"]["median"],
            "vs_tutorial_epoch_time_without_feature_cache": ours["epoch_s"]["median"] / tut["epoch_s"]["median"],
            "vs_tutorial_first_epoch": default["first_epoch_s"] / tut["first_epoch_s"],
        }
    return results


# --- 3: time to accuracy ---------------------------------------------------

class _Clock:
    def __new__(cls, start, target, cap=None):
        import keras

        class Clock(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.epochs = []
                self.reached = None

            def on_epoch_end(self, epoch, logs=None):
                elapsed = time.perf_counter() - start
                accuracy = float((logs or {}).get("val_accuracy", 0.0))
                self.epochs.append({"epoch": len(self.epochs) + 1, "seconds": elapsed, "val_accuracy": accuracy})
                if self.reached is None and accuracy >= target:
                    self.reached = elapsed
                if cap is not None and (self.reached is not None or elapsed > cap):
                    self.model.stop_training = True

        return Clock()


def bench_time_to_accuracy(p, train_dir, val_dir, work, weights, full_tutorial):
    import catdog
    import tutorial

    log("time to accuracy: catdog default recipe")
    start = time.perf_counter()
    clock = _Clock(start, p["target"])
    recipe = {} if p["recipe"] is None else dict(zip(("epochs", "fine_tune_epochs"), p["recipe"]))
    config = catdog.TrainConfig(
        data=str(train_dir), val_data=str(val_dir), out=str(work / "tta-run"),
        image_size=p["image_size"], batch_size=p["batch_size"], weights=weights, verbose=0,
        **recipe,
    )
    result = catdog.train(config, callbacks=[clock])
    ours = {
        "recipe": f"{config.epochs} + {config.fine_tune_epochs} epochs, Adam 1e-3 then 1e-5 from layer {config.fine_tune_at}",
        "seconds_to_target": clock.reached,
        "total_seconds": time.perf_counter() - start,
        "epochs": clock.epochs,
        "after_stage1": result.history[config.epochs - 1]["val_accuracy"] if config.epochs else None,
        "final_accuracy": result.final["val_accuracy"],
        "model": str(pathlib.Path(result.run_dir) / "model.keras"),
    }

    cap = None if full_tutorial or clock.reached is None else 2 * clock.reached
    log(f"time to accuracy: TF tutorial recipe (stops at the target or after {cap and round(cap)} s)")
    start = time.perf_counter()
    clock = _Clock(start, p["target"], cap)
    train = tutorial.tutorial_dataset(str(train_dir), p["image_size"], p["batch_size"])
    val = tutorial.tutorial_dataset(str(val_dir), p["image_size"], p["batch_size"], shuffle=False)
    model, base = tutorial.tutorial_model(p["image_size"], weights)
    first, second = p["tutorial_epochs"]
    model.fit(train, validation_data=val, epochs=first, callbacks=[clock], verbose=0)
    if not model.stop_training:
        tutorial.start_fine_tuning(model, base)
        model.fit(train, validation_data=val, epochs=first + second, initial_epoch=first, callbacks=[clock], verbose=0)
    theirs = {
        "recipe": f"{p['tutorial_epochs'][0]} + {p['tutorial_epochs'][1]} epochs, Adam 1e-4 then RMSprop 1e-5 from layer 100",
        "seconds_to_target": clock.reached,
        "stopped_after_seconds": time.perf_counter() - start,
        "cap_seconds": cap,
        "epochs": clock.epochs,
        "final_accuracy": clock.epochs[-1]["val_accuracy"] if clock.epochs else None,
        "complete": cap is None,
    }
    ratio = None
    if ours["seconds_to_target"] is not None:
        if theirs["seconds_to_target"] is not None:
            ratio = ours["seconds_to_target"] / theirs["seconds_to_target"]
        else:
            ratio = ours["seconds_to_target"] / theirs["stopped_after_seconds"]  # an upper bound
    return {"catdog": ours, "tutorial": theirs, "ratio": ratio, "ratio_is_upper_bound": theirs["seconds_to_target"] is None}


# --- 4: inference ------------------------------------------------------------

def bench_inference(p, model_path, val_dir, work):
    import numpy as np

    import catdog
    from catdog.data.folders import list_labelled_files
    from catdog.data.screening import inspect_files
    from catdog.data.pipeline import manifest_dataset
    from catdog.serving.inference import Predictor, predict_files

    per_class = p["predict_images"] // 2
    folder = common.subset_folder(val_dir, work / "predict", per_class)
    model = catdog.load_model(model_path)
    files = list_labelled_files(str(folder))
    manifest = inspect_files(files.paths, files.labels, model.image_size)
    images = np.concatenate([x.numpy() for x, _ in manifest_dataset(manifest, model.image_size, 64)])
    n = len(images)
    predictor = Predictor(model)
    predictor(images[:32])
    predict_files(model, [str(folder / "cats")], batch_size=p["batch_size"])  # warm

    files_rate, raw_rate = [], []
    for _ in range(p["repeats"]):
        log("inference: catdog predict on files")
        t = time.perf_counter()
        predictions, skipped = predict_files(model, [str(folder)], batch_size=p["batch_size"])
        files_rate.append(len(predictions) / (time.perf_counter() - t))
        log("inference: raw model on in-memory tensors")
        t = time.perf_counter()
        for start in range(0, n, p["batch_size"]):
            predictor(images[start:start + p["batch_size"]])
        raw_rate.append(n / (time.perf_counter() - t))

    one = images[:1]
    latency = _milliseconds_per_call(lambda: predictor(one), p["latency_calls"], warmup=10)
    tflite_latency, conversion = [], None
    if p["tflite_latency"]:  # the conversion alone takes 20 s: not in --quick
        log("inference: single-image latency with the TFLite engine")
        t = time.perf_counter()
        tflite = Predictor(model, engine="tflite")
        conversion = time.perf_counter() - t
        tflite_latency = _milliseconds_per_call(lambda: tflite(one), p["latency_calls"], warmup=10)
    keras_predict = _milliseconds_per_call(lambda: model.predict(one, verbose=0), min(10, p["latency_calls"]))
    return {
        "n_images": n,
        "predict_files_per_s": common.stats(files_rate),
        "raw_model_per_s": common.stats(raw_rate),
        "throughput_ratio": common.stats([a / b for a, b in zip(files_rate, raw_rate)]),
        "latency_ms": common.stats(latency),
        **({"tflite_latency_ms": common.stats(tflite_latency), "tflite_conversion_s": conversion} if tflite_latency else {}),
        "keras_predict_latency_ms": common.stats(keras_predict),
    }


def _milliseconds_per_call(call, calls, warmup=0):
    for _ in range(warmup):
        call()
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1000)
    return times


# --- 5: memory and growth ------------------------------------------------------

def bench_memory(p, work):
    rows = {}
    val = common.synthetic_jpegs(work / "mem-val", p["memory_val_per_class"], seed=99, size=p["memory_photo_size"])
    for size in p["memory_sizes"]:
        log(f"memory: writing {size} synthetic JPEGs")
        data = common.synthetic_jpegs(work / f"mem-{size}", size // 2, seed=size, size=p["memory_photo_size"])
        out = work / f"mem-run-{size}"
        log(f"memory: training on {size} images (no pixel or feature cache)")
        seconds, rss, rc = common.peak_rss_of([
            sys.executable, "-m", "catdog", "train", "--data", str(data), "--val-data", str(val),
            "--out", str(out), "--weights", "none", "--image-size", str(p["memory_image_size"]),
            "--epochs", "1", "--fine-tune-epochs", "1", "--cache", "none", "--no-feature-cache", "--quiet",
        ])
        history = json.loads((out / "history.json").read_text()) if rc == 0 else {"epochs": []}
        epoch_seconds = [e["seconds"] for e in history["epochs"]]
        rows[size] = {
            "peak_rss_mib": rss, "process_seconds": seconds, "exit_code": rc,
            "epoch_seconds": epoch_seconds,
            "seconds_per_image": [s / size for s in epoch_seconds],
        }
    small, large = (rows[s] for s in p["memory_sizes"])
    growth = {
        "rss_ratio": large["peak_rss_mib"] / small["peak_rss_mib"],
        "seconds_per_image_ratio": [
            b / a for a, b in zip(small["seconds_per_image"], large["seconds_per_image"])
        ],
        "size_ratio": p["memory_sizes"][1] / p["memory_sizes"][0],
    }
    return {"image_size": p["memory_image_size"], "rows": rows, "growth": growth}


# --- report ------------------------------------------------------------------

def fmt(stat, digits=1):
    return f"{stat['median']:.{digits}f} ({stat['min']:.{digits}f}–{stat['max']:.{digits}f})"


def verdict(ok):
    return "met" if ok else "**missed**"


def measured_by(results, key):
    section = results.get("sections", {}).get(key)
    return [f"Measured by `{section['command']}` on {section['date']}.", ""] if section else []


def render(results, p, command):
    m = results["machine"]
    lines = [
        "# catdog benchmarks",
        "",
        f"Last run: `{command}` on {results['date']} ({results['data']}); each section says which run measured it.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, GPU: {m['gpu']}; Python {m['python']}, "
        f"Keras {m['keras']}, TensorFlow {m['tensorflow']}, backend {m['backend']}.",
        "Figures are medians with (min–max) over repeats or epochs measured in this run; ratios compare",
        "numbers from the same run. The machine is shared: absolute times are noisy, ratios less so.",
        "",
    ]
    pipe = results.get("pipeline")
    if pipe:
        lines += [
            f"## 1–2. Training pipeline ({pipe['n_images']} JPEGs, {p['image_size']}x{p['image_size']}, batch {p['batch_size']}; after a warm-up epoch each, the variants take turns for {p['pipeline_epochs'] - 1} epochs)",
            "",
            *measured_by(results, "pipeline"),
            "| stage: variant | images/s | epoch s | first epoch s |",
            "|---|---|---|---|",
        ]
        for name, row in pipe["rows"].items():
            lines.append(f"| {name} | {fmt(row['images_per_s'])} | {fmt(row['epoch_s'])} | {row['first_epoch_s']:.1f} |")
        lines += ["", "| figure | stage 1 | stage 2 | target |", "|---|---|---|---|"]
        s1, s2 = pipe["stage1"], pipe["stage2"]
        lines.append(f"| pipeline efficiency (catdog / in-memory) | {s1['efficiency']:.3f} | {s2['efficiency']:.3f} | >= 0.90: {verdict(min(s1['efficiency'], s2['efficiency']) >= 0.9)} |")
        lines.append(f"| same without the decoded-image cache | {s1['efficiency_no_cache']:.3f} | {s2['efficiency_no_cache']:.3f} | (for comparison) |")
        lines.append(f"| epoch time, catdog default / TF tutorial | {s1['vs_tutorial_epoch_time']:.3f} | {s2['vs_tutorial_epoch_time']:.3f} | <= 0.80: {verdict(max(s1['vs_tutorial_epoch_time'], s2['vs_tutorial_epoch_time']) <= 0.8)} |")
        if "vs_tutorial_epoch_time_without_feature_cache" in s1:
            lines.append(f"| same without the stage-1 feature cache | {s1['vs_tutorial_epoch_time_without_feature_cache']:.3f} | {s2['vs_tutorial_epoch_time_without_feature_cache']:.3f} | (for comparison) |")
        lines.append(f"| first epoch, catdog / TF tutorial | {s1['vs_tutorial_first_epoch']:.3f} | {s2['vs_tutorial_first_epoch']:.3f} | (for comparison) |")
        lines.append("")
    tta = results.get("time_to_accuracy")
    if tta:
        ours, theirs = tta["catdog"], tta["tutorial"]
        target = p["target"]

        def when(x):
            return "not reached" if x is None else f"{x:.0f} s"

        lines += [
            f"## 3. Time to {target:.1%} validation accuracy (train 2,000 / validate 1,000, {p['image_size']}x{p['image_size']})",
            "",
            *measured_by(results, "time_to_accuracy"),
            "| recipe | time to target | final val accuracy | epochs run | wall time |",
            "|---|---|---|---|---|",
            f"| catdog default ({ours['recipe']}) | {when(ours['seconds_to_target'])} | {ours['final_accuracy']:.4f} (after stage 1: {ours['after_stage1']:.4f}) | {len(ours['epochs'])} | {ours['total_seconds']:.0f} s |",
            f"| TF tutorial ({theirs['recipe']}) | {when(theirs['seconds_to_target'])} | {theirs['final_accuracy']:.4f}{'' if theirs['complete'] else ' (when stopped)'} | {len(theirs['epochs'])} | {theirs['stopped_after_seconds']:.0f} s{'' if theirs['complete'] else ' (stopped at the target or at 2x catdog time)'} |",
            "",
            "Per-epoch validation accuracy, catdog: " + ", ".join(f"{e['val_accuracy']:.4f}" for e in ours["epochs"]) + ".",
            "Per-epoch validation accuracy, tutorial: " + ", ".join(f"{e['val_accuracy']:.4f}" for e in theirs["epochs"]) + ".",
            "",
        ]
        if tta["ratio"] is not None:
            bound = " (upper bound: the tutorial had not reached it when stopped)" if tta["ratio_is_upper_bound"] else ""
            lines.append(f"Time-to-target ratio catdog / tutorial: {tta['ratio']:.3f}{bound}; target <= 0.5: {verdict(tta['ratio'] <= 0.5)}.")
            lines.append("")
    inf = results.get("inference")
    if inf:
        lines += [
            f"## 4. Inference ({inf['n_images']} photographs, batch {p['batch_size']})",
            "",
            *measured_by(results, "inference"),
            "| figure | value | target |",
            "|---|---|---|",
            f"| `predict_files` (decode + model), images/s | {fmt(inf['predict_files_per_s'])} | |",
            f"| raw model on in-memory tensors, images/s | {fmt(inf['raw_model_per_s'])} | |",
            f"| throughput ratio | {fmt(inf['throughput_ratio'], 3)} | >= 0.9: {verdict(inf['throughput_ratio']['median'] >= 0.9)} |",
            f"| single-image latency, compiled Predictor (TF function), ms | {fmt(inf['latency_ms'])} | <= 20 ms: {verdict(inf['latency_ms']['median'] <= 20)} |",
            *(
                [f"| single-image latency, `Predictor(model, engine=\"tflite\")` (converted in {inf['tflite_conversion_s']:.0f} s when made), ms | {fmt(inf['tflite_latency_ms'])} | <= 20 ms: {verdict(inf['tflite_latency_ms']['median'] <= 20)} |"]
                if "tflite_latency_ms" in inf else []
            ),
            f"| single-image latency, `model.predict`, ms | {fmt(inf['keras_predict_latency_ms'])} | (for comparison) |",
            "",
        ]
    mem = results.get("memory")
    if mem:
        lines += [
            f"## 5. Memory and growth (synthetic JPEGs, {mem['image_size']}x{mem['image_size']}, 1 + 1 epochs, `--cache none --no-feature-cache`)",
            "",
            *measured_by(results, "memory"),
            "| training images | peak RSS MiB | epoch seconds (stage 1, stage 2) | seconds per image |",
            "|---|---|---|---|",
        ]
        for size, row in mem["rows"].items():
            epochs = ", ".join(f"{s:.1f}" for s in row["epoch_seconds"])
            per_image = ", ".join(f"{s * 1000:.2f} ms" for s in row["seconds_per_image"])
            lines.append(f"| {size} | {row['peak_rss_mib']:.0f} | {epochs} | {per_image} |")
        g = mem["growth"]
        lines += [
            "",
            f"{g['size_ratio']:.0f}x the images: peak memory x{g['rss_ratio']:.2f}, seconds per image x"
            + ", x".join(f"{r:.2f}" for r in g["seconds_per_image_ratio"])
            + " (linear cost = x1.00 per image; "
            "memory must not grow).",
            "",
        ]
    serving = results.get("serving")
    if serving:
        heading, *rest = serve_bench.render(serving)
        lines += [heading, "", *measured_by(results, "serving"), *rest[1:]]
    results_dir = pathlib.Path(__file__).resolve().parent / "results"
    for fragment in ("recipes.md", "levers.md", "export.md"):  # written by recipes.py, levers.py and export_bench.py
        path = results_dir / fragment
        if path.exists():
            lines += [path.read_text().strip(), ""]
    gpu = results_dir / "gpu.md"  # written by gpu.py on a GPU machine
    lines += [gpu.read_text().strip() if gpu.exists() else "## GPU\n\nNo GPU was lent to a session yet.", ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="BENCHMARKS.md")
    parser.add_argument("--json", default="benchmarks/results/latest.json")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for tests")
    parser.add_argument("--only", nargs="*", choices=list(SECTIONS), default=list(SECTIONS),
                        help="run these sections; the others keep their last results (from --json)")
    parser.add_argument("--full-tutorial", action="store_true", help="run the tutorial's 20 epochs to the end")
    parser.add_argument("--work", help="scratch folder (default: a temporary one)")
    parser.add_argument("--render", action="store_true",
                        help="run nothing: write --out again from --json and the fragments in benchmarks/results/")
    args = parser.parse_args(argv)
    p = QUICK if args.quick else FULL
    if args.render:
        return _render_again(args, p)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if common.have_shared() and not args.quick:
        os.environ.setdefault("KERAS_HOME", str(common.KERAS_CACHE))
    work = pathlib.Path(args.work or tempfile.mkdtemp(prefix="catdog-bench-"))
    work.mkdir(parents=True, exist_ok=True)

    if common.have_shared() and not args.quick:
        train_dir, val_dir = common.PHOTOS / "train", common.PHOTOS / "validation"
        data, weights = "real photographs from ../shared, ImageNet weights", "imagenet"
    else:
        per_class = 1000 if not args.quick else 12
        train_dir = common.synthetic_jpegs(work / "synthetic-train", per_class, seed=1)
        val_dir = common.synthetic_jpegs(work / "synthetic-val", per_class // 2, seed=2)
        weights = None if args.quick else "imagenet"
        data = "synthetic JPEGs" + (", random weights" if weights is None else ", ImageNet weights")
        if weights == "imagenet":
            from catdog.backbones import cached_imagenet_weights

            if cached_imagenet_weights() is None:
                weights, data = None, "synthetic JPEGs, random weights (no cached ImageNet weights)"

    import catdog  # noqa: F401  (after KERAS_HOME is set)

    results = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "data": data,
        "params": {k: list(v) if isinstance(v, tuple) else v for k, v in p.items()},
        "machine": common.machine(),
    }
    command = "python benchmarks/bench.py --quick" if args.quick else "make bench"
    partial = set(args.only) != set(SECTIONS)
    bench_args = ([f"--only {' '.join(args.only)}"] if partial else []) + (["--full-tutorial"] if args.full_tutorial else [])
    if bench_args:
        command += f" {' '.join(bench_args)}" if args.quick else f' BENCH_ARGS="{" ".join(bench_args)}"'
    if partial:
        previous = _previous_results(args.json, p, data)
        results["sections"] = previous.get("sections", {})
        results.update({key: previous[key] for key in SECTIONS.values() if key in previous})
    results.setdefault("sections", {})

    started = time.perf_counter()
    for section in args.only:
        log(f"section {section}")
        section_started = time.perf_counter()
        key = SECTIONS[section]
        if section == "pipeline":
            results[key] = bench_pipeline(p, train_dir, work, weights)
        elif section == "tta":
            results[key] = bench_time_to_accuracy(p, train_dir, val_dir, work, weights, args.full_tutorial)
        elif section == "inference":
            model_path = _speed_model(results, args, p, work, weights)
            results[key] = bench_inference(p, model_path, val_dir, work)
        elif section == "serving":
            model_path = _speed_model(results, args, p, work, weights)
            results[key] = serve_bench.bench_serving(model_path, val_dir, quick=args.quick, batch_size=p["batch_size"])
            results[key]["model"] = _speed_model_note(results, args, p, weights)
        elif section == "memory":
            results[key] = bench_memory(p, work)
        results["sections"][key] = {
            "command": command, "date": results["date"], "minutes": (time.perf_counter() - section_started) / 60,
        }
    results["bench_seconds"] = time.perf_counter() - started
    results["command"] = command

    text = render(results, p, command) + f"\nThis run: {results['bench_seconds'] / 60:.1f} minutes.\n"
    from catdog import artifacts

    artifacts.write_text(args.out, text)
    if args.json:
        artifacts.write_json(args.json, results)
    print(text)
    return 0


def _speed_model(results, args, p, work, weights):
    """The model the speed sections time: this run's trained one, or one with an untrained head."""
    tta = results.get("time_to_accuracy") if "tta" in args.only else None
    if tta is not None:
        return tta["catdog"]["model"]
    # The accuracy of the model does not change the speed of inference.
    model_path = work / "inference-model.keras"
    if not model_path.exists():
        import catdog as cd

        cd.CatDogClassifier(image_size=p["image_size"], weights=weights).save(str(model_path))
    return str(model_path)


def _speed_model_note(results, args, p, weights):
    if "tta" in args.only and results.get("time_to_accuracy"):
        return f"this run's trained model, {p['image_size']}x{p['image_size']}"
    return (f"MobileNetV2 at {p['image_size']}x{p['image_size']} with {weights or 'random'} weights and an untrained head "
            "(speed does not depend on the head's weights)")


def _render_again(args, p):
    from catdog import artifacts

    results = json.loads(pathlib.Path(args.json).read_text())
    command = results.get("command", "make bench")
    text = render(results, p, command) + f"\nThat run: {results['bench_seconds'] / 60:.1f} minutes.\n"
    artifacts.write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
