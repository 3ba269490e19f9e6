"""Loading `.keras` artifacts safely, with errors a user can act on."""

import os
import zipfile

import keras

from catdog.errors import ModelFileError, first_line


def load_model(path, compile=True):
    """Load a catdog `.keras` file in Keras' safe mode (no code from the file).

    Raises:
        ModelFileError: the file is missing, not a `.keras` archive, corrupt,
            or holds some other model.
    """
    from catdog.model import ImageClassifier

    if not os.path.isfile(path):
        raise ModelFileError(f"model file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path} is not a .keras model file (not a zip archive)")
    try:
        model = keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as error:  # Keras raises many types for bad archives
        raise ModelFileError(f"cannot load {path}: {first_line(error)}") from error
    if not isinstance(model, ImageClassifier):
        raise ModelFileError(
            f"{path} holds a {type(model).__name__}, not a catdog model"
        )
    return model
