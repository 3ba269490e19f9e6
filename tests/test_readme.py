"""The README's "Use catdog in your own Keras project" example runs as written.

Its first code block is extracted and executed with one line changed: the
settings line (a tiny folder of generated photos, 32x32, random weights,
2 epochs with the switch after the first).
"""

import pathlib
import re

import keras
import numpy as np

from conftest import ROOT, write_photo_folder

SETTINGS = 'DATA, IMAGE_SIZE, WEIGHTS, EPOCHS, SWITCH = "path/to/photos", 224, "imagenet", 6, 3'


def readme_example():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use catdog in your own Keras project", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_functional_example_runs_and_saves_a_loadable_model(tmp_path, monkeypatch):
    code = readme_example()
    assert SETTINGS in code
    data = write_photo_folder(tmp_path / "photos", per_class=3, names=("cats", "dogs", "foxes"))
    code = code.replace(SETTINGS, f'DATA, IMAGE_SIZE, WEIGHTS, EPOCHS, SWITCH = {str(data)!r}, 32, None, 2, 1')
    monkeypatch.chdir(tmp_path)
    keras.utils.set_random_seed(0)
    namespace = {}
    eager = keras.backend.backend() == "tensorflow"
    if eager:  # two steps: tracing EfficientNet costs more than running them
        import tensorflow as tf

        tf.config.run_functions_eagerly(True)
    try:
        exec(compile(code, "README.md", "exec"), namespace)
    finally:
        if eager:
            tf.config.run_functions_eagerly(False)
    history = namespace["model"].history.history
    assert history["stage"] == [1, 2]
    loaded = keras.saving.load_model(pathlib.Path(tmp_path) / "model.keras")
    images = np.random.default_rng(0).integers(0, 256, (2, 50, 40, 3)).astype("float32")
    p = keras.ops.convert_to_numpy(loaded(images))
    assert p.shape == (2, 3)
    np.testing.assert_allclose(p, keras.ops.convert_to_numpy(namespace["model"](images)), atol=1e-6)
