"""Default settings and option choices, importable without Keras or TensorFlow.

The command line builds its parser (defaults, choices, `--help`) from these
alone, so `catdog --help` and argument errors answer at once instead of after
TensorFlow's multi-second import. The modules that use them (`backbones`,
`callbacks`, `training.config`, `training.distribute`, `serving.export`)
import them from here.
"""

#: catdog's version (the package's `catdog.__version__`; pyproject.toml says the same).
VERSION = "0.1.0"

#: Index of the first layer unfrozen for fine-tuning, as in the TensorFlow
#: transfer-learning tutorial (MobileNetV2 has 154 layers, input included).
DEFAULT_FINE_TUNE_AT = 100
#: Stage-1 learning rate (Adam): the head starts from scratch.
DEFAULT_LEARNING_RATE = 1e-3
#: Stage-2 learning rate: low enough not to wreck ImageNet features
#: (`FineTuneSwitch`'s constant rate).
DEFAULT_FINE_TUNE_LEARNING_RATE = 1e-5
#: The recipe's stage-2 schedule: Adam from 2e-5 down to 0 on a cosine, the
#: same mean rate as a constant 1e-5. Chosen on 3 seeds against validation
#: AND the shift suite (benchmarks/recipes.py, BENCHMARKS.md "Recipes over
#: seeds"): it beat the constant 1e-5 on both in the mean (on validation by
#: 0.13 points, on the shift suite by 0.02: a tie).
DEFAULT_FINE_TUNE_SCHEDULE = "cosine"
DEFAULT_COSINE_FINE_TUNE_LEARNING_RATE = 2e-5
#: The recipe's colour augmentation while fine-tuning, after flip, rotation
#: and zoom: Keras core's RandomColorJitter (strength 0.2) and RandomGrayscale
#: (p 0.1). Chosen the same way, with the cosine (BENCHMARKS.md, candidate
#: `cosine_colour`). `ImageAugmentation` itself keeps both off: it cannot know
#: the range of the pixels it gets; the classifier, which does, turns them on.
DEFAULT_COLOUR_AUGMENTATION = {"color_jitter": 0.2, "grayscale": 0.1}

#: `--distribute` choices (see catdog.training.distribute).
DISTRIBUTE_NONE, DISTRIBUTE_MIRRORED, DISTRIBUTE_MULTIHOST = "none", "mirrored", "multihost"
DISTRIBUTE_CHOICES = (DISTRIBUTE_NONE, DISTRIBUTE_MIRRORED, DISTRIBUTE_MULTIHOST)
#: Keras' own variables for the cluster, read when an option is not given.
ENV_COORDINATOR = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
ENV_NUM_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
ENV_PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"

#: `catdog export` formats and quantizations (see catdog.serving.export).
EXPORT_SAVEDMODEL, EXPORT_TFLITE, EXPORT_ONNX = "savedmodel", "tflite", "onnx"
EXPORT_FORMATS = (EXPORT_SAVEDMODEL, EXPORT_TFLITE, EXPORT_ONNX)
QUANTIZE_INT8, QUANTIZE_FLOAT16 = "int8", "float16"
QUANTIZATIONS = (QUANTIZE_INT8, QUANTIZE_FLOAT16)
#: Images used to calibrate int8 quantization, at most.
DEFAULT_CALIBRATION_IMAGES = 100

#: The backbone built when none is named, and the names `--backbone` takes
#: (catdog.backbones.BACKBONES builds each; a test keeps the two in step).
DEFAULT_BACKBONE = "MobileNetV2"
BACKBONE_NAMES = (
    "MobileNetV2", "MobileNetV3Small", "MobileNetV3Large",
    "EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3",
    "EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3", "EfficientNetV2S",
    "ResNet50", "ResNet50V2", "ConvNeXtTiny", "DenseNet121",
)


def canonical_backbone_name(name):
    """A backbone name as catdog spells it ("efficientnet_b0" -> "EfficientNetB0"), or None."""
    key = str(name).lower().replace("_", "").replace("-", "")
    return next((known for known in BACKBONE_NAMES if known.lower() == key), None)
