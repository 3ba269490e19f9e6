"""What each speed lever is worth here: each one on and off, side by side.

    python benchmarks/levers.py [--repeats 7] [--quick]

The levers the speed issue names that `bench.py` does not already measure as
a whole pipeline: augmentation as one warp against Keras core's three layers
in a row, BatchNorm folding, XLA (`jit_compile`), mixed precision on this
CPU, and JPEG decoding at a reduced DCT scale. Each pair runs in turns
(A, B, A, B, ...) so that a slow spell of the shared machine hits both; the
table gives medians with (min-max). Uses the real ImageNet backbone when
$KERAS_HOME (or ../shared/keras) has it, random weights otherwise (the
arithmetic is the same). Writes a Markdown fragment to
benchmarks/results/levers.md, which `bench.py` includes in BENCHMARKS.md.
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import common  # noqa: E402

SHARED = pathlib.Path(os.environ.get("CATDOG_SHARED", HERE.parent.parent / "shared"))
if "KERAS_HOME" not in os.environ and (SHARED / "keras" / "models").is_dir():
    os.environ["KERAS_HOME"] = str(SHARED / "keras")

OUT = HERE / "results" / "levers.md"


def in_turns(variants, repeats, warmup=1):
    """{name: milliseconds per call} for zero-argument callables, run in turns."""
    for function in variants.values():
        for _ in range(warmup):
            function()
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, function in variants.items():
            start = time.perf_counter()
            function()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: common.stats(values) for name, values in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="32x32 images, 2 repeats: checks the script runs")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    started = time.perf_counter()

    import keras
    import numpy as np
    import tensorflow as tf

    import catdog
    from catdog.data.decode import decode_tf, resize_uint8

    size, batch = (32, 4) if args.quick else (224, 32)
    repeats = 2 if args.quick else args.repeats
    weights = "imagenet" if common.have_shared() and not args.quick else None
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, size, size, 3)).astype("uint8")
    rows = []

    def add(lever, results, note):
        (a, b) = results
        ratio = results[b]["median"] / results[a]["median"]
        rows.append((lever, a, results[a], b, results[b], ratio, note))

    # 1. augmentation: one warp against three layers in a row
    x = tf.constant(keras.ops.convert_to_numpy(catdog.ImagePreprocessor(size)(images)))
    fused = catdog.ImageAugmentation(seed=1)
    layers = [
        keras.layers.RandomFlip("horizontal", seed=1),
        keras.layers.RandomRotation(0.1, fill_mode="reflect", seed=2),
        keras.layers.RandomZoom(0.1, fill_mode="reflect", seed=3),
    ]

    def in_a_row(t):
        for layer in layers:
            t = layer(t, training=True)
        return t

    one_warp = tf.function(lambda t: fused(t, training=True))
    three = tf.function(in_a_row)
    add(
        "augmentation (flip, rotation, zoom)",
        in_turns({"one warp (catdog)": lambda: one_warp(x).numpy(), "three Keras layers in a row": lambda: three(x).numpy()}, repeats),
        f"ms per batch of {batch}; kept",
    )

    # 2. BatchNorm folding, 3. XLA, 4. mixed precision: the stage-1 forward pass
    def forward(jit=False, **model_args):
        keras.utils.set_random_seed(0)
        model = catdog.CatDogClassifier(image_size=size, weights=weights, **model_args)
        function = tf.function(lambda t: model(t, training=False), jit_compile=jit)
        return lambda: function(images).numpy()

    def fine_tuning_step(**model_args):
        keras.utils.set_random_seed(0)
        model = catdog.CatDogClassifier(image_size=size, weights=weights, augmentation=False, **model_args)
        model.unfreeze_backbone()
        catdog.compile_for_stage_one(model, 1e-5)
        labels = np.arange(batch, dtype="float32") % 2
        return lambda: model.train_on_batch(images, labels)

    add(
        "BatchNorm folded into the convolutions, fine-tuning step",
        in_turns({"folded (catdog)": fine_tuning_step(), "unfolded": fine_tuning_step(fold_batchnorm=False)}, repeats),
        f"ms per stage-2 train step of {batch} (no augmentation); kept",
    )
    plain = forward()
    add(
        "BatchNorm folded into the convolutions, forward pass",
        in_turns({"folded (catdog)": plain, "unfolded": forward(fold_batchnorm=False)}, repeats),
        f"ms per forward pass of {batch}: less than in training",
    )
    add(
        "XLA (`jit_compile=True`)",
        in_turns({"no XLA (catdog)": plain, "XLA": forward(jit=True)}, repeats),
        f"ms per forward pass of {batch}; not used: slower on this CPU",
    )
    add(
        "mixed precision (float16 compute), fine-tuning step",
        in_turns({"float32 (catdog's default)": fine_tuning_step(), "mixed_float16": fine_tuning_step(mixed_precision=True)}, repeats),
        f"ms per stage-2 train step of {batch}; `--mixed-precision` stays opt-in (meant for GPUs)",
    )

    # 5. JPEG decoding at a reduced DCT scale, on large photos
    with tempfile.TemporaryDirectory(prefix="catdog-levers-") as folder:
        photo = (2048, 1536) if not args.quick else (256, 192)
        root = common.synthetic_jpegs(pathlib.Path(folder), batch // 2, size=(photo[1], photo[0]))
        paths = sorted(str(p) for p in root.rglob("*.jpg"))

        def decoder(scaled):
            def load(path):
                contents = tf.io.read_file(path)
                image = decode_tf(contents, size) if scaled else tf.io.decode_jpeg(contents, channels=3)
                return resize_uint8(image, size)

            dataset = tf.data.Dataset.from_tensor_slices(paths).map(load, num_parallel_calls=2).batch(len(paths))
            return lambda: next(iter(dataset)).numpy()

        add(
            f"JPEG decode of {photo[0]}x{photo[1]} photos",
            in_turns({"DCT-scaled decode (catdog)": decoder(True), "full decode, then resize": decoder(False)}, repeats),
            f"ms per {len(paths)} photos, 2 threads; kept",
        )

    m = common.machine()
    lines = [
        "## Speed levers, each on and off",
        "",
        f"Measured by `python benchmarks/levers.py{' --quick' if args.quick else ''}` on {time.strftime('%Y-%m-%d %H:%M')} "
        f"({m['cpu']}, {m['cores']} cores; {'ImageNet' if weights else 'random'} weights, {size}x{size}; "
        f"the two variants of each lever take turns, {repeats} times; {time.perf_counter() - started:.0f} s). "
        "The stage-1 feature cache, the decoded-image cache and the TFLite engine are measured in the sections above.",
        "",
        "| lever | catdog's choice | ms | the other way | ms | other / catdog | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for lever, a, sa, b, sb, ratio, note in rows:
        lines.append(
            f"| {lever} | {a} | {sa['median']:.1f} ({sa['min']:.1f}–{sa['max']:.1f}) | {b} | "
            f"{sb['median']:.1f} ({sb['min']:.1f}–{sb['max']:.1f}) | {ratio:.2f} | {note} |"
        )
    text = "\n".join(lines) + "\n"
    from catdog import artifacts

    artifacts.write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
