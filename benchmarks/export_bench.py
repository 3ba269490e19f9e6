"""File size, CPU latency and parity of every export format.

    python benchmarks/export_bench.py [--model MODEL.keras] [--runs 30]

Without `--model` it builds the standard 224x224 model on the real ImageNet
backbone (from $KERAS_HOME, or ../shared/keras) and fits its head on the
features of 64 training photos (a logistic regression, seconds), so P(dog)
means something without a full training run. Parity is measured on 32
validation photos (16 cats, 16 dogs) that the head never saw; int8 is
calibrated on the training photos. Latency is one image per call (batch 1),
the median of `--runs` calls after warm-up, each runtime with its default
threads. Writes a Markdown fragment to benchmarks/results/export.md.
"""

import argparse
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
SHARED = pathlib.Path(os.environ.get("CATDOG_SHARED", ROOT.parent / "shared"))
if "KERAS_HOME" not in os.environ and (SHARED / "keras" / "models").is_dir():
    os.environ["KERAS_HOME"] = str(SHARED / "keras")


def photo_set(split, per_class, image_size):
    import numpy as np

    from catdog.data.screening import inspect_files
    from catdog.data.pipeline import manifest_dataset

    base = SHARED / "data" / "cats_and_dogs_filtered" / split
    paths, labels = [], []
    for label, name in enumerate(("cats", "dogs")):
        files = sorted(os.listdir(base / name))[:per_class]
        paths += [str(base / name / f) for f in files]
        labels += [label] * len(files)
    manifest = inspect_files(paths, labels, image_size)
    images = np.concatenate([x.numpy() for x, _ in manifest_dataset(manifest, image_size, 64)])
    return images, np.asarray(manifest.labels, np.float32)


def build_model(train_images, train_labels):
    """224x224 ImageNet MobileNetV2 with a head fitted on cached features."""
    import keras
    import numpy as np

    import catdog

    keras.utils.set_random_seed(0)
    model = catdog.CatDogClassifier(image_size=224, weights="imagenet")
    features = keras.ops.convert_to_numpy(
        model.pool(model.backbone(model.preprocessor(train_images), training=False))
    )
    head = keras.Sequential([keras.Input((features.shape[-1],)), keras.layers.Dense(1, activation="sigmoid")])
    head.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    head.fit(features, train_labels, epochs=100, batch_size=len(train_labels), verbose=0)
    model.classifier.set_weights(head.layers[-1].get_weights())
    catdog.compile_for_stage_one(model, 1e-3)
    return model


def latency_ms(function, image, runs):
    for _ in range(3):
        function(image)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function(image)
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a catdog .keras file (default: build one, see above)")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "export.md"))
    args = parser.parse_args()

    import numpy as np

    import catdog
    from catdog.serving import export

    started = time.perf_counter()
    if args.model:
        model = catdog.load_model(args.model)
        source = f"`{args.model}` ({model.image_size}x{model.image_size}, stage {model.stage})"
        train_images, _ = photo_set("train", 32, model.image_size)
    else:
        train_images, train_labels = photo_set("train", 32, 224)
        model = build_model(train_images, train_labels)
        source = "224x224 MobileNetV2 (ImageNet weights), head fitted on 64 training photos"
    images, labels = photo_set("validation", 16, model.image_size)
    expected = model.predict(images, verbose=0).reshape(-1)

    rows = []
    with tempfile.TemporaryDirectory(prefix="catdog-bench-") as folder:
        keras_file = os.path.join(folder, "model.keras")
        model.save(keras_file)
        saved = os.path.join(folder, "savedmodel")
        export.write_saved_model(model, saved)
        files = {("keras", None): keras_file, ("savedmodel", None): saved}
        for quantize in (None, "float16", "int8"):
            path = os.path.join(folder, f"model-{quantize or 'float32'}.tflite")
            calibration = train_images if quantize == "int8" else None
            with open(path, "wb") as handle:
                handle.write(export.tflite_from_saved_model(saved, quantize, calibration))
            files[("tflite", quantize)] = path
        files[("onnx", None)] = export.write_onnx(model, os.path.join(folder, "model.onnx"))

        one = images[:1]
        for (format, quantize), path in files.items():
            if format == "keras":
                p = expected
                function = model.predict_on_batch
            else:
                runner = export.load_exported(path)
                p = runner.predict(images)
                function = runner.predict
            rows.append({
                "format": format + (f" ({quantize})" if quantize else ""),
                "size": export._size(path) / 1e6,
                "latency": latency_ms(function, one, args.runs),
                "max_diff": float(np.abs(p - expected).max()),
                "agreement": float(np.mean((p >= 0.5) == (expected >= 0.5))),
                "accuracy": float(np.mean((p >= 0.5) == (labels >= 0.5))),
            })

    margin = float(np.abs(expected - 0.5).min())
    lines = [
        "## Export formats: size, CPU latency, parity",
        "",
        f"Model: {source}. Parity on {len(images)} validation photos (16 cats, 16 dogs) against the",
        f"Keras model (its smallest |P(dog) - 0.5| there: {margin:.3f}). Latency: batch of 1, median of",
        f"{args.runs} calls after warm-up, default threads; {platform.machine()}, {os.cpu_count()} CPUs",
        f"(`benchmarks/export_bench.py`, {time.perf_counter() - started:.0f} s).",
        "",
        "| format | size (MB) | latency (ms) | max abs diff P(dog) | label agreement | accuracy |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(
            f"| {row['format']} | {row['size']:.1f} | {row['latency']:.1f} | {row['max_diff']:.1e} "
            f"| {row['agreement']:.1%} | {row['accuracy']:.1%} |"
        )
    text = "\n".join(lines) + "\n"
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
