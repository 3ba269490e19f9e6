"""Exported models (SavedModel, TFLite, ONNX) predict what the .keras model predicts.

Parity set: 32 real photographs (16 cats, 16 dogs from ../shared's validation
split) with a 64x64 catdog model on the real ImageNet backbone when ../shared
is present; else 32 synthetic photos with a tiny random-weight model (32x32,
alpha 0.35). The augmentation layer is in place (the export must leave it
out). The head is a logistic regression fitted on the parity photos' features
and then scaled so that the logits' median magnitude is 2: P(dog) spreads
over (0, 1) instead of sitting at 0.5 (where labels mean nothing) or at 0 and
1 (where a float tolerance means nothing).
"""

import importlib.util
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

import catdog
from catdog.serving import export
from conftest import SHARED_PHOTOS, SHARED_WEIGHTS, calibrate_batchnorm, tiny_model, write_photo_folder

REAL_WEIGHTS = SHARED_WEIGHTS.is_file() and SHARED_PHOTOS.is_dir()
SIZE = 64 if REAL_WEIGHTS else 32
PER_CLASS = 16
FLOAT_TOLERANCE = 1e-4
LABEL_AGREEMENT = 0.99

has_onnx = pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in ("tf2onnx", "onnx", "onnxruntime")),
    reason='ONNX export needs tf2onnx, onnx and onnxruntime (pip install "catdog[export]")',
)


def parity_folder(root):
    """cats/ and dogs/ with 16 photos each: real ones when ../shared is present."""
    if REAL_WEIGHTS:
        for name in ("cats", "dogs"):
            source = SHARED_PHOTOS / "validation" / name
            (root / name).mkdir(parents=True)
            for filename in sorted(os.listdir(source))[:PER_CLASS]:
                shutil.copy(source / filename, root / name / filename)
        return root, "real"
    return write_photo_folder(root, per_class=PER_CLASS, size=(60, 80)), "synthetic"


def load_photos(folder):
    from catdog.data.labelled import labelled_data

    batches = [(x.numpy(), y.numpy()) for x, y in labelled_data(str(folder), SIZE, batch_size=64).dataset]
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def fit_head(model, images, labels, median_logit=2.0):
    """Logistic regression on the (frozen) backbone's pooled features, tempered."""
    features = keras.ops.convert_to_numpy(model.pool(model.backbone(model.preprocessor(images), training=False)))
    # The head's start must not hang on how many random draws building the model took.
    keras.utils.set_random_seed(1)
    head = keras.Sequential([keras.Input((features.shape[-1],)), keras.layers.Dense(1, activation="sigmoid")])
    head.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    head.fit(features, labels, epochs=150, batch_size=len(labels), verbose=0)
    kernel, bias = head.layers[-1].get_weights()
    scale = median_logit / np.median(np.abs(features @ kernel + bias))
    model.classifier.set_weights([kernel * scale, bias * scale])


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    folder, kind = parity_folder(root / "photos")
    images, labels = load_photos(folder)
    assert images.shape == (2 * PER_CLASS, SIZE, SIZE, 3) and images.dtype == np.uint8
    keras.utils.set_random_seed(0)
    if REAL_WEIGHTS:
        model = catdog.CatDogClassifier(image_size=SIZE, weights=str(SHARED_WEIGHTS))
    else:
        model = tiny_model()
        calibrate_batchnorm(model, images)
    fit_head(model, images, labels)
    path = root / "model.keras"
    model.save(path)
    model = catdog.load_model(str(path))
    expected = model.predict(images, verbose=0).reshape(-1)
    assert expected.min() < 0.2 and expected.max() > 0.8, expected
    assert np.mean((expected > 0.02) & (expected < 0.98)) > 0.5, expected
    return {"root": root, "folder": folder, "kind": kind, "model": model, "path": path,
            "images": images, "expected": expected}


@pytest.fixture(scope="module")
def saved_model(parity):
    result = catdog.export_model(str(parity["path"]), parity["root"] / "savedmodel", format="savedmodel")
    return result


def assert_float_parity(runner, parity):
    p = runner.predict(parity["images"])
    assert p.shape == parity["expected"].shape
    difference = np.abs(p - parity["expected"]).max()
    assert difference <= FLOAT_TOLERANCE, f"max |P(dog) difference| {difference:.2e} on {parity['kind']} photos"


def assert_label_agreement(runner, parity):
    p = runner.predict(parity["images"])
    agreement = np.mean((p >= 0.5) == (parity["expected"] >= 0.5))
    assert agreement >= LABEL_AGREEMENT, f"labels agree on {agreement:.1%} of {parity['kind']} photos"


def test_savedmodel_serving_signature_takes_raw_uint8_images(saved_model, parity):
    import tensorflow as tf

    assert saved_model.format == "savedmodel" and saved_model.size_bytes > 0
    loaded = tf.saved_model.load(saved_model.path)
    signature = loaded.signatures["serving_default"]
    spec = signature.structured_input_signature[1]["images"]
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, SIZE, SIZE, 3]
    assert set(signature.structured_outputs) == {"p_dog"}
    assert_float_parity(export.load_exported(saved_model.path), parity)


def test_savedmodel_has_no_augmentation(saved_model, parity):
    import tensorflow as tf

    function = tf.saved_model.load(saved_model.path).signatures["serving_default"]
    ops = {node.op for node in function.graph.as_graph_def().node}
    for library_function in function.graph.as_graph_def().library.function:
        ops |= {node.op for node in library_function.node_def}
    assert not {op for op in ops if "Random" in op}, "random (augmentation) ops in the served graph"
    first = function(images=tf.constant(parity["images"]))["p_dog"].numpy()
    again = function(images=tf.constant(parity["images"]))["p_dog"].numpy()
    np.testing.assert_array_equal(first, again)


@pytest.fixture(scope="module")
def tflite_float32(saved_model, parity):
    path = parity["root"] / "model.tflite"
    path.write_bytes(export.tflite_from_saved_model(saved_model.path))
    return path


def test_tflite_float32_parity(tflite_float32, parity):
    runner = export.load_exported(tflite_float32)
    assert runner.image_size == SIZE
    assert_float_parity(runner, parity)


@pytest.mark.slow  # a long run whose path the default suite also takes: `make test-slow` (keeps `make test` near 10 minutes)
def test_tflite_float16_agrees_and_is_smaller(saved_model, tflite_float32, parity, tmp_path):
    path = tmp_path / "model16.tflite"
    path.write_bytes(export.tflite_from_saved_model(saved_model.path, "float16"))
    assert_label_agreement(export.load_exported(path), parity)
    assert path.stat().st_size < 0.75 * tflite_float32.stat().st_size


def test_tflite_int8_calibrated_on_photos_agrees(saved_model, tflite_float32, parity, tmp_path):
    calibration = export.calibration_array(parity["folder"], SIZE)
    assert len(calibration) == 2 * PER_CLASS
    path = tmp_path / "model8.tflite"
    path.write_bytes(export.tflite_from_saved_model(saved_model.path, "int8", calibration))
    runner = export.load_exported(path)
    assert any(d["dtype"] == np.int8 for d in runner._interpreter.get_tensor_details()), "no int8 tensors"
    assert path.stat().st_size < 0.4 * tflite_float32.stat().st_size
    if not REAL_WEIGHTS:
        pytest.skip("int8 label agreement needs a real backbone (../shared): random weights do not survive int8 activations")
    assert_label_agreement(runner, parity)


@pytest.mark.slow  # a long run whose path the default suite also takes: `make test-slow` (keeps `make test` near 10 minutes)
@has_onnx
def test_cli_exports_onnx_that_onnxruntime_runs_at_parity(parity, tmp_path):
    import onnxruntime

    out = tmp_path / "model.onnx"
    result = run_catdog("export", parity["path"], "--format", "onnx", "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("catdog: exported onnx")
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (given,) = session.get_inputs()
    assert given.name == "images" and given.type == "tensor(uint8)" and given.shape[1:] == [SIZE, SIZE, 3]
    assert [o.name for o in session.get_outputs()] == ["p_dog"]
    assert_float_parity(export.load_exported(out), parity)


def test_export_refuses_to_overwrite_without_permission(saved_model, parity):
    with pytest.raises(catdog.ConfigError, match="--overwrite"):
        catdog.export_model(parity["model"], saved_model.path, format="savedmodel")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"format": "coreml"}, "unknown export format"),
        ({"format": "onnx", "quantize": "int8"}, "tflite only"),
        ({"format": "tflite", "quantize": "int4"}, "unknown quantization"),
        ({"format": "tflite", "quantize": "int8"}, "--calibration-data"),
    ],
)
def test_bad_export_requests_are_config_errors(tmp_path, kwargs, message):
    with pytest.raises(catdog.ConfigError, match=message):
        catdog.export_model(tmp_path / "none.keras", tmp_path / "out", **kwargs)


def test_missing_onnx_packages_are_a_clear_error(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def without_tf2onnx(name, *args, **kwargs):
        if name == "tf2onnx":
            raise ImportError("No module named 'tf2onnx'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_tf2onnx)
    with pytest.raises(catdog.OptionalDependencyError, match=r"catdog\[export\]"):
        catdog.export_model(tmp_path / "m.keras", tmp_path / "m.onnx", format="onnx")


def run_catdog(*args, timeout=600):
    env = {**os.environ, "CATDOG_DEBUG": ""}
    return subprocess.run(
        [sys.executable, "-m", "catdog", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["export", "{tmp}/missing.keras", "--format", "onnx", "--out", "{tmp}/m.onnx"], "model file not found"),
        (["export", "{tmp}/fake.keras", "--format", "savedmodel", "--out", "{tmp}/m"], "not a .keras model"),
        (["export", "{tmp}/m.keras", "--format", "tflite", "--quantize", "int8", "--out", "{tmp}/m.tflite"], "--calibration-data"),
        (["export", "{tmp}/m.keras", "--format", "onnx", "--quantize", "float16", "--out", "{tmp}/m.onnx"], "tflite only"),
    ],
)
def test_cli_export_errors_are_one_line_with_exit_code_2(tmp_path, capsys, args, fragment):
    from catdog.cli import main

    (tmp_path / "fake.keras").write_text("hello")
    assert main([a.replace("{tmp}", str(tmp_path)) for a in args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("catdog: error:") and fragment in lines[0], lines


def test_cli_rejects_unknown_formats(capsys):
    from catdog.cli import main

    with pytest.raises(SystemExit) as exit:
        main(["export", "m.keras", "--format", "coreml", "--out", "m"])
    assert exit.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_tflite_engine_predictor_matches_the_keras_model_and_leaves_no_file(parity, tmp_path, monkeypatch):
    import tempfile

    from catdog.serving.inference import Predictor

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    predictor = Predictor(parity["model"], engine="tflite")
    assert list(tmp_path.iterdir()) == []  # converted in a temporary folder, read into memory
    one = predictor(parity["images"][:1])
    assert one.shape == (1,)
    p = predictor(parity["images"])  # another batch size: the interpreter is resized
    difference = np.abs(p - parity["expected"]).max()
    assert difference <= FLOAT_TOLERANCE, f"max |P(dog) difference| {difference:.2e}"
    np.testing.assert_allclose(one, p[:1], atol=FLOAT_TOLERANCE)


def test_unknown_predictor_engine_is_a_config_error(parity):
    from catdog.serving.inference import Predictor

    with pytest.raises(catdog.ConfigError, match="engine"):
        Predictor(parity["model"], engine="onnx")


def test_savedmodel_bytes_signature_matches_catdog_predict(saved_model, parity, tmp_path, capsys):
    """`serving_bytes` takes encoded files and decodes them in the graph with predict's TensorFlow
    route: the same P(dog) as `catdog predict` for every file predict decodes with TensorFlow (the
    parity photos, and PNG, 16-bit PNG, GIF, BMP and greyscale JPEG written here), within 1e-5."""
    import json

    import tensorflow as tf
    from PIL import Image

    from catdog.data.screening import choose_decoder
    from conftest import run_cli
    from messy import png16

    rng = np.random.default_rng(3)

    def noisy(height, width):
        return np.clip(rng.normal(128, 60, (height, width, 3)), 0, 255).astype(np.uint8)

    Image.fromarray(noisy(70, 50)).save(tmp_path / "photo.png")
    Image.fromarray(noisy(40, 90)).convert("P").save(tmp_path / "photo.gif")
    Image.fromarray(noisy(33, 47)).save(tmp_path / "photo.bmp")
    Image.fromarray(noisy(80, 60).mean(-1).astype(np.uint8)).save(tmp_path / "grey.jpg", quality=90)
    png16(tmp_path / "rgb16.png", rng.integers(0, 65536, (50, 40, 3)).astype(np.uint16))
    files = sorted(str(p) for p in parity["folder"].rglob("*.jpg")) + sorted(str(p) for p in tmp_path.iterdir())
    assert {choose_decoder(f)[0] for f in files} == {"tf"}  # the files predict decodes with TensorFlow
    code, out, err = run_cli(capsys, "predict", parity["path"], *files, "--json")
    assert code == 0, err
    expected = {row["path"]: row["p_dog"] for row in map(json.loads, out.splitlines())}
    signature = tf.saved_model.load(saved_model.path).signatures[export.BYTES_SIGNATURE]
    contents = tf.constant([open(f, "rb").read() for f in files])
    p_dog = signature(**{export.BYTES_INPUT_NAME: contents})[export.OUTPUT_NAME].numpy().reshape(-1)
    assert p_dog.std() > 0.05  # spread: agreement means something
    np.testing.assert_allclose(p_dog, [expected[f] for f in files], atol=1e-5)


@pytest.mark.slow  # a long run whose path the default suite also takes: `make test-slow` (keeps `make test` near 10 minutes)
def test_an_exported_three_class_model_predicts_one_row_of_probabilities_per_image(tmp_path):
    """N classes: (n, N) probabilities that sum to 1, equal to the model's, not a flattened vector.

    Every format's runner shares `ExportedModel.predict`; the SavedModel is the cheapest to make.
    """
    fmt = "savedmodel"
    model = catdog.ImageClassifier(image_size=32, alpha=0.35, weights=None, class_names=["a", "b", "c"])
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("uint8")
    expected = model.predict(images, verbose=0)
    path = tmp_path / ("exported" if fmt == "savedmodel" else "model.tflite")
    catdog.export_model(model, str(path), format=fmt)
    got = catdog.load_exported(str(path)).predict(images)
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(got, expected, atol=1e-4)
