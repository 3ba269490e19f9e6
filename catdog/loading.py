"""Loading `.keras` artifacts safely, with errors a user can act on."""

import os
import zipfile

from catdog.errors import ModelFileError, first_line


def check_model_file(path):
    """Refuse a missing file or one that is no `.keras` archive, without importing Keras.

    The command line calls it first, so a mistyped path is answered at once,
    not after TensorFlow's import (seconds).
    """
    if not os.path.isfile(path):
        raise ModelFileError(f"model file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path} is not a .keras model file (not a zip archive)")


def load_model(path, compile=True):
    """Load a catdog `.keras` file in Keras' safe mode (no code from the file).

    Unlike `keras.saving.load_model`, which also works after `import catdog`,
    it checks that the file holds a catdog classifier and turns Keras' many
    errors for a bad file into one `ModelFileError` a user can act on.

    Args:
        path: The `.keras` file.
        compile: Restore the optimizer and loss too, to train on. Defaults to
            `True`.

    Returns:
        The classifier (an `ImageClassifier`, e.g. a `CatDogClassifier`), in
        the training stage it was saved in.

    Raises:
        ModelFileError: the file is missing, not a `.keras` archive, corrupt,
            or holds some other model.

    Example:

    >>> import catdog
    >>> catdog.CatDogClassifier(image_size=32, alpha=0.35, weights=None).save("model.keras")
    >>> model = catdog.load_model("model.keras")
    >>> type(model).__name__, model.class_names, model.image_size
    ('CatDogClassifier', ['cat', 'dog'], 32)
    >>> try:
    ...     catdog.load_model("missing.keras")
    ... except catdog.ModelFileError as error:
    ...     print(error)
    model file not found: missing.keras
    """
    import keras

    from catdog.model import ImageClassifier

    check_model_file(path)
    try:
        model = keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as error:  # Keras raises many types for bad archives
        raise ModelFileError(f"cannot load {path}: {first_line(error)}") from error
    if not isinstance(model, ImageClassifier):
        raise ModelFileError(
            f"{path} holds a {type(model).__name__}, not a catdog model"
        )
    return model
