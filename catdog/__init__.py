"""catdog: two-stage MobileNetV2 transfer learning with Keras 3.

Importing catdog registers its layers and model with Keras, so
`keras.saving.load_model("model.keras")` works after `import catdog`.
"""

import os

# TensorFlow's C++ INFO/WARNING logs drown the progress bars; set it to 0 to see them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from catdog.backbone import DEFAULT_FINE_TUNE_AT, build_mobilenet_v2
from catdog.backbones import BACKBONES, build_backbone
from catdog.callbacks import FineTuneSwitch, replace_optimizer
from catdog.finetune import BaseFineTuning, GradualUnfreezing, freeze, unfreeze_from
from catdog.config import TrainConfig
from catdog.evaluation import EvaluationResult, evaluate
from catdog.gradcam import explain
from catdog.errors import (
    CatdogError,
    ConfigError,
    DataError,
    ModelFileError,
    OptionalDependencyError,
    WeightsUnavailableError,
)
from catdog.export import export_model, load_exported
from catdog.feature_cache import StageOneFeatureCache
from catdog.layers import ImageAugmentation, ImagePreprocessor
from catdog.loading import load_model
from catdog.model import CatDogClassifier, ImageClassifier
from catdog.training import TrainResult, compile_for_stage_one, train

__version__ = "0.1.0"

__all__ = [
    "BACKBONES",
    "BaseFineTuning",
    "CatDogClassifier",
    "CatdogError",
    "ConfigError",
    "DataError",
    "EvaluationResult",
    "DEFAULT_FINE_TUNE_AT",
    "FineTuneSwitch",
    "GradualUnfreezing",
    "ImageClassifier",
    "ImageAugmentation",
    "ImagePreprocessor",
    "ModelFileError",
    "StageOneFeatureCache",
    "OptionalDependencyError",
    "TrainConfig",
    "TrainResult",
    "WeightsUnavailableError",
    "build_backbone",
    "build_mobilenet_v2",
    "compile_for_stage_one",
    "evaluate",
    "explain",
    "freeze",
    "export_model",
    "load_exported",
    "load_model",
    "replace_optimizer",
    "train",
    "unfreeze_from",
]
