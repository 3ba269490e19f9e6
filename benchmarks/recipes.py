"""Choose the recipe by evidence: each candidate over several seeds, judged on
validation accuracy AND on the robustness suite (`catdog evaluate --shifts`),
with the TensorFlow tutorial's recipe in the same table.

    python benchmarks/recipes.py                      # every candidate, seeds 0 1 2
    python benchmarks/recipes.py --candidates default tutorial --seeds 0
    python benchmarks/recipes.py --quick              # tiny synthetic run (tests)
    make bench-recipes                                # the above, then BENCHMARKS.md

Trains on ../shared's 2,000 `train` photos, evaluates on its 1,000
`validation` photos, clean and under every shift of the suite. Each run's
result goes into the JSON file (benchmarks/results/recipes.json) as soon as
it is done, and a run already there is skipped: the experiment (about two
hours of both cores for everything) can be run in pieces, in any order, and
interrupted. Writes benchmarks/results/recipes.md, which `bench.py` puts into
BENCHMARKS.md.

Validation accuracy here is the suite's clean accuracy: every recipe's model
sees the same photos through catdog's decode and resize, the tutorial's
included, so the numbers compare.
"""

import argparse
import datetime
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402

RESULTS = HERE / "results"
JSON_FILE = RESULTS / "recipes.json"
MD_FILE = RESULTS / "recipes.md"
DEFAULT_WORK = HERE.parent / "runs" / "bench-recipes"
#: The suite on all 1,000 validation photos costs about 11 CPU-minutes per
#: model on the 2-core machine (21 passes of the model and 20 shifts of each
#: photo); half of them halves that, for 24 models. 0: all.
DEFAULT_SHIFT_LIMIT = 500

#: name -> what it changes. "config": TrainConfig overrides of the default
#: recipe; "model_of": evaluate that candidate's models instead of training
#: (same seed); "tta": mirror-image averaging at evaluation; "tutorial": the
#: TensorFlow tutorial's own pipeline, model and 10 + 10 epochs.
#: The default changed twice on 2026-12-02, each time to the sweep's winner:
#: stage 2's constant 1e-5 -> a cosine from 2e-5, then colour augmentation
#: added. The candidates measured before each change pin what the default
#: was then (FORMER, COSINE), so their rows stay what was measured.
FORMER = {"fine_tune_schedule": "constant", "fine_tune_learning_rate": 1e-5, "colour_augmentation": False}
COSINE = {"colour_augmentation": False}
COLOUR = {"color_jitter": 0.2, "grayscale": 0.1}
CANDIDATES = {
    "default": {"config": {}, "about": "catdog's default since 2026-12-02: 3 head epochs, then 3 fine-tuning epochs with the rate falling from 2e-5 to 0 on a cosine (a mean of 1e-5), augmenting while fine-tuning with flip, rotation and zoom plus Keras core's RandomColorJitter (0.2) and RandomGrayscale (0.1); measured as `cosine_colour`, the two winners of the sweep together"},
    "cosine_stage2": {"config": {**COSINE}, "about": "the default for part of 2026-12-02: the same without colour augmentation (`--no-colour-augmentation`)"},
    "constant_stage2": {"config": {**FORMER}, "about": "the default until 2026-12-02: flip, rotation and zoom, and a constant stage-2 rate of 1e-5 (`--no-colour-augmentation --fine-tune-schedule constant --fine-tune-lr 1e-5`)"},
    "augment_both_stages": {"config": {**FORMER, "augment_stage_one": True}, "about": "augmentation in stage 1 too (`--augment-stage-one`, an earlier default; no stage-1 feature cache), constant stage-2 rate"},
    "label_smoothing": {"config": {**FORMER, "label_smoothing": 0.1}, "about": "label smoothing 0.1 (`--label-smoothing 0.1`), constant stage-2 rate"},
    "stage2_6_epochs": {"config": {**FORMER, "fine_tune_epochs": 6}, "about": "6 fine-tuning epochs instead of 3 (`--fine-tune-epochs 6`), constant stage-2 rate"},
    "colour_augmentation": {"config": {**FORMER, "augmentation": COLOUR}, "about": "flip, rotation and zoom plus Keras core's RandomColorJitter (strength 0.2) and RandomGrayscale (p 0.1) while fine-tuning, constant stage-2 rate"},
    "mirror_tta": {"model_of": "constant_stage2", "tta": True, "about": "the former default's models (`constant_stage2`), each prediction averaged with the mirror image's (`evaluate --tta`)"},
    "tutorial": {"tutorial": True, "about": "the TensorFlow transfer-learning tutorial: its pipeline and model, Adam 1e-4 for 10 epochs, then RMSprop 1e-5 from layer 100 for 10"},
}

FULL = dict(image_size=224, batch_size=32, recipe=None, tutorial_epochs=(10, 10), seeds=(0, 1, 2))
QUICK = dict(image_size=32, batch_size=4, recipe=(1, 1), tutorial_epochs=(1, 1), seeds=(0,), alpha=0.35)


def log(message):
    print(f"[recipes {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- one run -----------------------------------------------------------------


def train_catdog(name, seed, p, data, work):
    """Train one candidate with one seed; (model path, fit seconds, wall seconds, history)."""
    import catdog

    timer = common.EpochTimer()
    recipe = {} if p["recipe"] is None else dict(zip(("epochs", "fine_tune_epochs"), p["recipe"]))
    overrides = {**recipe, **CANDIDATES[name]["config"]}
    if "alpha" in p:  # --quick: a narrow backbone, seconds per run
        overrides["alpha"] = p["alpha"]
    if p["recipe"] is not None and "fine_tune_epochs" in CANDIDATES[name]["config"]:
        overrides["fine_tune_epochs"] = p["recipe"][1] + 1  # --quick: still "more"
    config = catdog.TrainConfig(
        data=str(data["train"]), val_data=str(data["validation"]), out=str(work / f"{name}-seed{seed}"),
        image_size=p["image_size"], batch_size=p["batch_size"], weights=data["weights"], seed=seed,
        verbose=0, overwrite=True, **overrides,
    )
    started = time.perf_counter()
    result = catdog.train(config, callbacks=[timer])
    wall = time.perf_counter() - started
    history = [
        {"epoch": r["epoch"] + 1, "stage": r.get("stage"), "val_accuracy": r.get("val_accuracy"), "seconds": s}
        for r, s in zip(result.history, timer.seconds)
    ]
    return pathlib.Path(result.run_dir) / "model.keras", sum(timer.seconds), wall, history


class TutorialClassifier:
    """The tutorial's Functional model as the suite needs it: P(dog) from uint8 pixels."""

    def __init__(self, model, image_size):
        self.model, self.image_size = model, image_size

    def predict_on_batch(self, images):
        import numpy as np

        logits = np.asarray(self.model.predict_on_batch(np.asarray(images, np.float32)), np.float64)
        return 1.0 / (1.0 + np.exp(-logits))


def train_tutorial(seed, p, data):
    import keras

    import tutorial

    keras.utils.set_random_seed(seed)
    timer = common.EpochTimer()
    started = time.perf_counter()
    train = tutorial.tutorial_dataset(str(data["train"]), p["image_size"], p["batch_size"], seed=seed)
    val = tutorial.tutorial_dataset(str(data["validation"]), p["image_size"], p["batch_size"], shuffle=False)
    model, base = tutorial.tutorial_model(p["image_size"], data["weights"])
    first, second = p["tutorial_epochs"]
    model.fit(train, validation_data=val, epochs=first, callbacks=[timer], verbose=0)
    tutorial.start_fine_tuning(model, base)
    model.fit(train, validation_data=val, epochs=first + second, initial_epoch=first, callbacks=[timer], verbose=0)
    wall = time.perf_counter() - started
    history = [
        {"epoch": i + 1, "stage": 1 if i < first else 2, "val_accuracy": float(logs.get("val_accuracy", float("nan"))), "seconds": s}
        for i, (logs, s) in enumerate(zip(timer.logs, timer.seconds))
    ]
    return TutorialClassifier(model, p["image_size"]), sum(timer.seconds), wall, history


def run_one(name, seed, p, data, work, results, args):
    """Train (or reuse) and evaluate one candidate with one seed; its result row."""
    from catdog.evaluation.robustness import evaluate_shifts

    candidate = CANDIDATES[name]
    if candidate.get("tutorial"):
        log(f"{name} seed {seed}: training ({p['tutorial_epochs'][0]} + {p['tutorial_epochs'][1]} epochs)")
        model, fit_seconds, wall, history = train_tutorial(seed, p, data)
    else:
        source = candidate.get("model_of", name)
        path = work / f"{source}-seed{seed}" / "model.keras"
        if source != name:
            key = f"{source}/seed{seed}"
            if key not in results["runs"] or not path.exists():
                results["runs"][key] = run_one(source, seed, p, data, work, results, args)
                save(results, args.json)
            trained = results["runs"][key]
            fit_seconds, wall, history = trained["fit_seconds"], trained["wall_seconds"], trained["history"]
            log(f"{name} seed {seed}: the models of {source}")
        else:
            log(f"{name} seed {seed}: training")
            path, fit_seconds, wall, history = train_catdog(name, seed, p, data, work)
        model = str(path)
    log(f"{name} seed {seed}: robustness suite")
    tta = bool(candidate.get("tta"))
    robustness = evaluate_shifts(
        model, str(data["validation"]), seed=args.suite_seed, limit=args.shift_limit or None, tta=tta
    ).to_dict()
    # The results file is committed: name the photos relative to the project, not by this machine's path.
    robustness["source"] = os.path.relpath(robustness["source"], HERE.parent)
    val_accuracy = robustness["clean_accuracy"]
    if robustness["n_images"] < robustness["n_available"]:  # the suite ran on a sample
        import catdog

        val_accuracy = catdog.evaluate(model if not isinstance(model, str) else catdog.load_model(model),
                                       str(data["validation"]), tta=tta).accuracy
    return {
        "candidate": name,
        "seed": seed,
        "fit_seconds": fit_seconds,
        "wall_seconds": wall,
        "history": history,
        "val_accuracy": val_accuracy,
        "shift_mean": robustness["mean_accuracy"],
        "robustness": robustness,
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "load_average": _load_average(),
        # Sessions land on different machines: fit times compare only within one CPU.
        "cpu": results["machine"]["cpu"],
    }


def _load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# --- results file ----------------------------------------------------------------


def load_results(path, params, fresh):
    if not fresh and path.exists():
        results = json.loads(path.read_text())
        if results.get("params") != params:
            raise SystemExit(
                f"recipes: {path} holds runs with other settings ({results.get('params')}); "
                "pass --fresh to start over or --json for another file"
            )
        return results
    return {"params": params, "runs": {}}


def save(results, path):
    from catdog import artifacts

    artifacts.write_json(str(path), results)


# --- tables ------------------------------------------------------------------------


def summarise(rows):
    """Mean, worst seed and spread (max - min) of a list of numbers."""
    return {"mean": statistics.fmean(rows), "worst": min(rows), "spread": max(rows) - min(rows), "n": len(rows)}


def render(results, command):
    runs = list(results["runs"].values())
    names = [n for n in CANDIDATES if any(r["candidate"] == n for r in runs)]
    by_name = {n: sorted((r for r in runs if r["candidate"] == n), key=lambda r: r["seed"]) for n in names}
    params = results["params"]
    machine = results.get("machine", {})
    suite = runs[0]["robustness"] if runs else {}
    lines = [
        "## Recipes over seeds: validation and robustness",
        "",
        f"Measured by `{command}` ({params['data']}; {params['image_size']}x{params['image_size']}, batch "
        f"{params['batch_size']}; {machine.get('cpu', 'unknown CPU')}, {machine.get('cores', '?')} cores). "
        f"Runs dated {min(r['date'] for r in runs) if runs else '-'} to {max(r['date'] for r in runs) if runs else '-'}; "
        "the 1-minute load average at the end of each run is in the JSON. Validation: accuracy on the "
        f"{suite.get('n_available', suite.get('n_images', '?'))} validation photos; shift mean: mean accuracy over the {len(suite.get('shifts', {}))} shifts of "
        f"`catdog evaluate --shifts` ({suite.get('suite', '?')}, suite seed {suite.get('seed', '?')}"
        + (f", on a seeded sample of {suite['n_images']} of the {suite['n_available']} photos" if suite.get("n_available", 0) > suite.get("n_images", 0) else "")
        + "). "
        "Fit time: the epochs' wall time, validation included (tutorial and catdog alike). "
        "Spread: best seed minus worst seed. Validation accuracy is always on every validation photo."
        + _cpu_caveat(runs),
        "",
        "| candidate | seeds | validation: mean | worst seed | spread | shift mean: mean | worst seed | spread | fit time s | / tutorial | vs default (validation, shift mean) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    tutorial_time = None
    if "tutorial" in by_name:
        tutorial_time = statistics.fmean(r["fit_seconds"] for r in by_name["tutorial"])
    summary = {}
    for name in names:
        rows = by_name[name]
        val = summarise([r["val_accuracy"] for r in rows])
        shift = summarise([r["shift_mean"] for r in rows])
        fit = statistics.fmean(r["fit_seconds"] for r in rows)
        summary[name] = {"validation": val, "shift_mean": shift, "fit_seconds": fit}
    for name in names:
        val, shift, fit = summary[name]["validation"], summary[name]["shift_mean"], summary[name]["fit_seconds"]
        ratio = f"{fit / tutorial_time:.2f}" if tutorial_time else "-"
        lines.append(
            f"| {name} | {', '.join(str(r['seed']) for r in by_name[name])} | {val['mean']:.2%} | {val['worst']:.2%} | "
            f"{val['spread']:.2%} | {shift['mean']:.2%} | {shift['worst']:.2%} | {shift['spread']:.2%} | {fit:.0f} | {ratio} | "
            f"{_against_default(summary, name)} |"
        )
    lines += ["", "What each candidate changes:", ""]
    lines += [f"- `{name}`: {CANDIDATES[name]['about']}." for name in names]
    lines += ["", *_verdict(summary, tutorial_time), "", "### Per seed", "",
              "| candidate | seed | validation | shift mean | worst shift | fit time s | whole run s | CPU |",
              "|---|---|---|---|---|---|---|---|"]
    for name in names:
        for r in by_name[name]:
            worst = r["robustness"]["worst"]
            lines.append(
                f"| {name} | {r['seed']} | {r['val_accuracy']:.2%} | {r['shift_mean']:.2%} | "
                f"{worst['shift']} {worst['accuracy']:.2%} | {r['fit_seconds']:.0f} | {r['wall_seconds']:.0f} | {r.get('cpu') or 'not recorded'} |"
            )
    families = list(suite.get("families", {}))
    if families:
        lines += ["", "### Robustness by shift family (mean over seeds)", "",
                  "| candidate | clean | " + " | ".join(f.replace("_", " ") for f in families) + " | mean |",
                  "|---|---|" + "---|" * (len(families) + 1)]
        for name in names:
            rows = by_name[name]
            cells = [statistics.fmean(r["robustness"]["families"][f] for r in rows) for f in families]
            lines.append(
                f"| {name} | {statistics.fmean(r['val_accuracy'] for r in rows):.1%} | "
                + " | ".join(f"{c:.1%}" for c in cells)
                + f" | {statistics.fmean(r['shift_mean'] for r in rows):.1%} |"
            )
    return "\n".join(lines) + "\n", summary


def _cpu_caveat(runs):
    """A warning when the fit times come from more than one machine (or from unrecorded ones)."""
    cpus = {r.get("cpu") for r in runs}
    if len(cpus) <= 1 and None not in cpus:
        return ""
    named = sorted(c for c in cpus if c)
    return (
        " **The fit times come from more than one machine** ("
        + (", ".join(named) if named else "")
        + ("; " if named and None in cpus else "")
        + ("some runs did not record theirs" if None in cpus else "")
        + "; the per-seed table names each run's): compare them, and the ratios to the tutorial, "
        "only between runs of one CPU."
    )


def _against_default(summary, name):
    """The 3-seed mean differences from the default, and whether the candidate wins on both."""
    if name == "default" or "default" not in summary:
        return "-"
    ours, base = summary[name], summary["default"]
    val = ours["validation"]["mean"] - base["validation"]["mean"]
    shift = ours["shift_mean"]["mean"] - base["shift_mean"]["mean"]
    wins = val > 1e-9 and shift > 1e-9
    return f"{val * 100:+.2f}, {shift * 100:+.2f} points" + (": **better on both**" if wins else "")


def _verdict(summary, tutorial_time):
    """The issue's acceptance test, default against tutorial, in words."""
    if "default" not in summary or "tutorial" not in summary:
        return ["(The default-against-tutorial check needs both in the table.)"]
    ours, theirs = summary["default"], summary["tutorial"]
    checks = []
    for key, label in (("validation", "validation"), ("shift_mean", "shift mean")):
        for stat in ("mean", "worst"):
            ok = ours[key][stat] >= theirs[key][stat] - 1e-9  # a tie is "at least as accurate", whatever the float means round to
            checks.append(f"{label} {stat}: {ours[key][stat]:.2%} vs {theirs[key][stat]:.2%} ({'met' if ok else '**missed**'})")
    ratio = ours["fit_seconds"] / tutorial_time
    checks.append(f"fit time ratio {ratio:.2f} (<= 0.3: {'met' if ratio <= 0.3 else '**missed**'})")
    return ["Default against the tutorial (at least as accurate, at most 0.3x the time): " + "; ".join(checks) + "."]


# --- main ----------------------------------------------------------------------------


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    parser.add_argument("--seeds", nargs="+", type=int, help="training seeds (default: 0 1 2; --quick: 0)")
    parser.add_argument("--quick", action="store_true", help="32x32 synthetic photos, random weights, 1 + 1 epochs: checks the script")
    parser.add_argument("--json", type=pathlib.Path, help=f"results file, read to skip runs already done (default: {JSON_FILE.relative_to(HERE.parent)})")
    parser.add_argument("--out", type=pathlib.Path, help=f"Markdown fragment (default: {MD_FILE.relative_to(HERE.parent)})")
    parser.add_argument("--work", type=pathlib.Path, help=f"run folders, kept so that mirror_tta reuses the default's models (default: {DEFAULT_WORK.relative_to(HERE.parent)})")
    parser.add_argument("--shift-limit", type=int, default=DEFAULT_SHIFT_LIMIT, help="run the shift suite on a seeded sample of this many validation photos, 0 for all; validation accuracy is always on all of them (default: %(default)s)")
    parser.add_argument("--suite-seed", type=int, default=0, help="seed of the robustness suite (default: 0)")
    parser.add_argument("--fresh", action="store_true", help="ignore the runs already in --json")
    parser.add_argument("--render", action="store_true", help="run nothing: write --out again from --json")
    args = parser.parse_args(argv)
    p = QUICK if args.quick else FULL
    seeds = args.seeds if args.seeds is not None else list(p["seeds"])
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="catdog-recipes-")) if args.quick else None
    args.json = args.json or (scratch / "recipes.json" if args.quick else JSON_FILE)
    args.out = args.out or (scratch / "recipes.md" if args.quick else MD_FILE)
    work = args.work or (scratch / "work" if args.quick else DEFAULT_WORK)
    command = (
        "python benchmarks/recipes.py"
        + (" --quick" if args.quick else "")
        + (f" --shift-limit {args.shift_limit}" if args.shift_limit != DEFAULT_SHIFT_LIMIT else "")
    )

    if common.have_shared() and not args.quick:
        os.environ.setdefault("KERAS_HOME", str(common.KERAS_CACHE))
        data = {"train": common.PHOTOS / "train", "validation": common.PHOTOS / "validation", "weights": "imagenet"}
        description = "real photographs from ../shared, ImageNet weights"
    elif args.render:  # nothing runs: no photos to write
        data, description = None, "synthetic JPEGs, random weights"
    else:
        per_class = 6 if args.quick else 1000
        data = {
            "train": common.synthetic_jpegs(work / "synthetic-train", per_class, seed=1, size=(48, 64) if args.quick else (375, 500)),
            "validation": common.synthetic_jpegs(work / "synthetic-val", max(2, per_class // 2), seed=2, size=(48, 64) if args.quick else (375, 500)),
            "weights": None,
        }
        description = "synthetic JPEGs, random weights"
    from catdog.evaluation.robustness import SUITE_VERSION

    params = {
        "data": description, "image_size": p["image_size"], "batch_size": p["batch_size"],
        "recipe": p["recipe"] and list(p["recipe"]), "tutorial_epochs": list(p["tutorial_epochs"]),
        "suite": SUITE_VERSION, "suite_seed": args.suite_seed, "shift_limit": args.shift_limit,
    }
    results = load_results(args.json, params, args.fresh)
    if not args.render:
        results["machine"] = common.machine()
        for name in args.candidates:
            for seed in seeds:
                key = f"{name}/seed{seed}"
                if key in results["runs"]:
                    log(f"{key}: already in {args.json}, skipped")
                    continue
                results["runs"][key] = run_one(name, seed, p, data, work, results, args)
                save(results, args.json)
    if not results["runs"]:
        raise SystemExit("recipes: no runs to report")
    text, summary = render(results, command)
    results["summary"] = summary
    save(results, args.json)
    from catdog import artifacts

    artifacts.write_text(str(args.out), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
