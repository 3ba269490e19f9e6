"""Grad-CAM on tiny models, in memory and loaded back from `.keras` files."""

import keras
import numpy as np
import pytest

import catdog
from catdog.evaluation.gradcam import class_activation_maps, overlay
from conftest import calibrate_batchnorm, synthetic_photo, tiny_model

#: Stride 8 in MobileNetV2: an 8x8 map at 64x64, inside the nested backbone.
INNER_LAYER = "block_6_expand_relu"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny stage-1 and stage-2 model, each with its `.keras` round trip."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images = np.stack([synthetic_photo(i % 2, rng, (64, 64)) for i in range(16)])
    pairs = {}
    for stage in (1, 2):
        model = calibrate_batchnorm(tiny_model(image_size=64, stage=stage), images)
        path = tmp_path_factory.mktemp("gradcam") / f"stage{stage}.keras"
        model.save(path)
        pairs[stage] = (model, keras.saving.load_model(path))
    return pairs


def photo(seed, size=(50, 70)):
    rng = np.random.default_rng(seed)
    image = synthetic_photo(seed % 2, rng, size)
    image[10:30, 20:45] = rng.integers(0, 256, (20, 25, 3))  # something to look at
    return image


@pytest.mark.parametrize("stage", [1, 2])
@pytest.mark.parametrize("layer", [None, INNER_LAYER])
def test_loaded_model_explains_like_the_original(models, stage, layer):
    model, loaded = models[stage]
    image = photo(1)
    heat_map = catdog.explain(loaded, image, layer=layer)
    assert heat_map.shape == image.shape[:2] and heat_map.dtype == np.float32
    assert np.isfinite(heat_map).all()
    assert heat_map.min() >= 0.0 and 0.8 < heat_map.max() <= 1.0  # the peak, a little blurred by resizing
    assert heat_map.std() > 0.05  # a map, not a flat field
    np.testing.assert_allclose(heat_map, catdog.explain(model, image, layer=layer), atol=1e-4)


def test_heat_map_changes_with_the_input(models):
    _, loaded = models[2]
    first = catdog.explain(loaded, photo(1), layer=INNER_LAYER)
    second = catdog.explain(loaded, photo(3), layer=INNER_LAYER)
    assert np.abs(first - second).mean() > 0.02
    shifted = np.roll(photo(1), 20, axis=1)
    assert np.abs(catdog.explain(loaded, shifted, layer=INNER_LAYER) - first).mean() > 0.02


def test_inner_layer_map_has_its_resolution(models):
    _, loaded = models[1]
    maps = class_activation_maps(loaded, photo(1)[None], layer=INNER_LAYER)
    assert maps.shape == (1, 8, 8)
    assert class_activation_maps(loaded, photo(1)[None]).shape == (1, 2, 2)


def test_cat_and_dog_evidence_do_not_overlap_and_predicted_picks_one(models):
    _, loaded = models[2]
    image = photo(5)[None]
    dog = class_activation_maps(loaded, image, target="dog")[0]
    cat = class_activation_maps(loaded, image, target="cat")[0]
    # Global pooling + one dense unit: d(logit)/dA has the same weights
    # everywhere, so where one class has evidence the other has none.
    assert np.all((dog == 0) | (cat == 0))
    p_dog = float(loaded.predict_on_batch(image)[0, 0])
    expected = dog if p_dog >= 0.5 else cat
    np.testing.assert_allclose(class_activation_maps(loaded, image)[0], expected)


def test_explain_reads_files_and_any_channel_count(models, tmp_path):
    from PIL import Image

    _, loaded = models[1]
    gray = photo(2)[..., 0]
    Image.fromarray(gray).save(tmp_path / "gray.png")
    from_file = catdog.explain(loaded, str(tmp_path / "gray.png"))
    assert from_file.shape == gray.shape
    rgba = np.dstack([photo(2), np.full(gray.shape, 255, np.uint8)])
    assert catdog.explain(loaded, rgba).shape == gray.shape


def test_overlay_blends_the_heat_map_over_the_image():
    image = np.full((6, 8, 3), 100, np.uint8)
    heat_map = np.zeros((6, 8), np.float32)
    heat_map[:, 4:] = 1.0
    blended = overlay(image, heat_map, opacity=0.5)
    assert blended.shape == (6, 8, 3) and blended.dtype == np.uint8
    # jet: 0 is dark blue, 1 is dark red.
    assert blended[0, 0, 2] > blended[0, 0, 0] and blended[0, 7, 0] > blended[0, 7, 2]
    np.testing.assert_array_equal(overlay(image, heat_map, opacity=0.0), image)


def test_bad_arguments_are_config_errors(models):
    _, loaded = models[1]
    with pytest.raises(catdog.ConfigError, match="no layer"):
        catdog.explain(loaded, photo(1), layer="no_such_layer")
    with pytest.raises(catdog.ConfigError, match="target"):
        catdog.explain(loaded, photo(1), target="horse")
    with pytest.raises(catdog.ConfigError, match="one image"):
        catdog.explain(loaded, np.zeros((2, 8, 8, 3)))
