"""Shared fixtures: tiny models, synthetic photo folders, and ../shared detection."""

import os
import pathlib

import numpy as np
import pytest
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = pathlib.Path(os.environ.get("CATDOG_SHARED", ROOT.parent / "shared"))
SHARED_WEIGHTS = SHARED / "keras" / "models" / (
    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
)
SHARED_PHOTOS = SHARED / "data" / "cats_and_dogs_filtered"

needs_shared = pytest.mark.skipif(
    not (SHARED_WEIGHTS.is_file() and SHARED_PHOTOS.is_dir()),
    reason="needs ../shared (real ImageNet weights and cats_and_dogs_filtered photos)",
)

#: Small enough for seconds-long tests: 32x32 input, a 0.35-wide MobileNetV2.
TINY = dict(image_size=32, alpha=0.35, weights=None)


def tiny_model(**overrides):
    import catdog

    return catdog.CatDogClassifier(**{**TINY, **overrides})


def synthetic_photo(label, rng, size=(48, 40)):
    """A noisy image whose colour says its class: reddish cat, bluish dog."""
    height, width = size
    base = np.array([190, 90, 60] if label == 0 else [60, 90, 190], np.float32)
    noise = rng.normal(0, 35, (height, width, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def write_photo_folder(root, per_class=6, seed=0, names=("cats", "dogs"), size=(48, 40)):
    """cats/ and dogs/ folders of small synthetic JPEGs; returns the root."""
    rng = np.random.default_rng(seed)
    root = pathlib.Path(root)
    for label, name in enumerate(names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(synthetic_photo(label, rng, size)).save(folder / f"{name}.{i}.jpg", quality=92)
    return root


@pytest.fixture
def photo_folder(tmp_path):
    return write_photo_folder(tmp_path / "photos")


@pytest.fixture(scope="session")
def session_photo_folder(tmp_path_factory):
    return write_photo_folder(tmp_path_factory.mktemp("photos"), per_class=8)


@pytest.fixture(scope="session")
def trained_model_file(tmp_path_factory, session_photo_folder):
    """A tiny model trained through both stages by `catdog.train`, saved."""
    import catdog

    out = tmp_path_factory.mktemp("run") / "run"
    result = catdog.train(
        catdog.TrainConfig(
            data=str(session_photo_folder),
            out=str(out),
            image_size=32,
            alpha=0.35,
            weights=None,
            epochs=1,
            fine_tune_epochs=1,
            batch_size=8,
            verbose=0,
        )
    )
    return pathlib.Path(result.run_dir) / "model.keras"


def calibrate_batchnorm(model, images):
    """Give a randomly initialised backbone the BatchNorm statistics of `images`.

    Random weights with ImageNet-free moving statistics (mean 0, variance 1)
    make activations vanish, and with them every gradient; real pre-trained
    weights don't have that problem, tiny test models need this.
    """
    import keras

    backbone = model.backbone
    batchnorms = [l for l in backbone.layers if isinstance(l, keras.layers.BatchNormalization)]
    saved = [(l.trainable, l.momentum) for l in batchnorms]
    was_trainable = backbone.trainable
    backbone.trainable = True
    for layer in batchnorms:
        layer.trainable, layer.momentum = True, 0.0
    backbone(model.preprocessor(images), training=True)
    for layer, (trainable, momentum) in zip(batchnorms, saved):
        layer.momentum = momentum
    backbone.trainable = was_trainable
    for layer, (trainable, _) in zip(batchnorms, saved):
        layer.trainable = trainable if was_trainable else False
    if model.stage == 1:
        model.freeze_backbone()
    else:
        model.unfreeze_backbone()
    return model


def run_cli(capsys, *args):
    """`catdog ARGS` in this process: (exit code, stdout, stderr)."""
    from catdog import cli

    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exit:  # argparse errors
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    """Exit code 2 and one stderr line holding every fragment, no traceback."""
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
