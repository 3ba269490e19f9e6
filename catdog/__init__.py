"""catdog: two-stage MobileNetV2 transfer learning with Keras 3.

The public API is listed in `__all__`; each name is imported from its module
the first time it is used (PEP 562), so `import catdog` (and the `catdog`
command's `--help`) does not pay for TensorFlow's import. catdog's Keras
layers and model are registered with Keras as soon as Keras is imported, so
`keras.saving.load_model("model.keras")` works after `import catdog`, in
either order of the two imports (see `catdog._keras_registration`).
"""

import importlib
import os
import pkgutil

# TensorFlow's C++ INFO/WARNING logs drown the progress bars; set it to 0 to see them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from catdog.defaults import VERSION as __version__  # noqa: E402

#: Public name -> the module that defines it.
_EXPORTS = {
    "BACKBONES": "catdog.backbones",
    "BaseFineTuning": "catdog.finetune",
    "GradualUnfreezing": "catdog.finetune",
    "ImageClassifier": "catdog.model",
    "build_backbone": "catdog.backbones",
    "freeze": "catdog.finetune",
    "unfreeze_from": "catdog.finetune",
    "CatDogClassifier": "catdog.model",
    "claim_folder": "catdog.ownership",
    "CatdogError": "catdog.errors",
    "ConfigError": "catdog.errors",
    "DataError": "catdog.errors",
    "DEFAULT_FINE_TUNE_AT": "catdog.defaults",
    "EvaluationResult": "catdog.evaluation.evaluate",
    "FineTuneSwitch": "catdog.callbacks",
    "ImageAugmentation": "catdog.layers",
    "ImagePreprocessor": "catdog.layers",
    "ModelFileError": "catdog.errors",
    "OptionalDependencyError": "catdog.errors",
    "OutputError": "catdog.errors",
    "ExportError": "catdog.errors",
    "TrainingDiverged": "catdog.errors",
    "SparseCategoricalCrossentropyWithSmoothing": "catdog.losses",
    "StageOneFeatureCache": "catdog.training.feature_cache",
    "TrainConfig": "catdog.training.config",
    "TrainResult": "catdog.training.train",
    "WeightsUnavailableError": "catdog.errors",
    "build_mobilenet_v2": "catdog.backbones",
    "compile_for_stage_one": "catdog.training.train",
    "evaluate": "catdog.evaluation.evaluate",
    "explain": "catdog.evaluation.gradcam",
    "export_model": "catdog.serving.export",
    "load_exported": "catdog.serving.export",
    "load_image": "catdog.data.photos",
    "load_splits": "catdog.data.sources",
    "plot_training_curves": "catdog.evaluation.figures",
    "Predictor": "catdog.serving.inference",
    "preprocessing_for": "catdog.backbones",
    "evaluate_shifts": "catdog.evaluation.robustness.evaluation",
    "load_model": "catdog.loading",
    "replace_optimizer": "catdog.finetune",
    "save_model": "catdog.training.distribute",
    "train": "catdog.training.train",
}

__all__ = sorted(_EXPORTS)

#: Sub-packages whose usual entry point is imported with them
#: (`catdog.data.sources.load_splits` after `import catdog`, as documented).
_SUBPACKAGE_ENTRY = {"data": "catdog.data.sources"}


def __getattr__(name):
    module_name = _EXPORTS.get(name)
    if module_name is not None:
        value = getattr(importlib.import_module(module_name), name)
        globals()[name] = value
        return value
    if name in _submodules():
        importlib.import_module(_SUBPACKAGE_ENTRY.get(name, f"{__name__}.{name}"))
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | _submodules())


def _submodules():
    return {info.name for info in pkgutil.iter_modules(__path__) if not info.name.startswith("_")}


from catdog import _keras_registration  # noqa: E402

_keras_registration.install()
