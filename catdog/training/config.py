"""The training recipe as one plain, serializable object."""

import dataclasses
from dataclasses import dataclass

from catdog.defaults import (
    BACKBONE_NAMES,
    DEFAULT_BACKBONE,
    DEFAULT_FINE_TUNE_LEARNING_RATE,
    DEFAULT_LEARNING_RATE,
    DISTRIBUTE_CHOICES,
    canonical_backbone_name,
)
from catdog.errors import ConfigError

#: How the stage-2 learning rate moves over stage 2.
FINE_TUNE_SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved as `config.json` in the run.

    `epochs` is the number of stage-1 (head only) epochs and
    `fine_tune_epochs` the number of stage-2 epochs that follow in the same
    `fit()`.
    """

    data: str = "tfds:cats_vs_dogs"
    out: str = "runs/catdog"
    val_data: str | None = None
    val_split: float = 0.2
    image_size: int = 224
    batch_size: int = 32
    epochs: int = 3
    fine_tune_epochs: int = 3
    #: first backbone layer trained in stage 2; None: the backbone's default (100 for MobileNetV2)
    fine_tune_at: int | str | None = None
    learning_rate: float = DEFAULT_LEARNING_RATE
    fine_tune_learning_rate: float = DEFAULT_FINE_TUNE_LEARNING_RATE
    #: "constant" keeps the stage-2 rate; "cosine" decays it to 0 over stage 2
    fine_tune_schedule: str = "constant"
    #: targets pulled towards 0.5 by this much in the loss (0: none)
    label_smoothing: float = 0.0
    weights: str | None = "imagenet"
    #: a name from catdog.backbones.BACKBONES
    backbone: str = DEFAULT_BACKBONE
    alpha: float = 1.0
    dropout: float = 0.2
    augmentation: bool = True
    #: augment during stage 1 too (by default only while fine-tuning; see CatDogClassifier)
    augment_stage_one: bool = False
    limit: int | None = None
    cache: str = "auto"
    #: remember the frozen backbone's features in stage 1 (see catdog.training.feature_cache)
    feature_cache: bool = True
    mixed_precision: bool = False
    seed: int = 0
    overwrite: bool = False
    resume: bool = True
    #: 0: quiet, 1: progress bars, 2: one line per epoch (`catdog train`: 1 on a terminal, else 2)
    verbose: int = 1
    #: "none", "mirrored" (all GPUs of this machine) or "multihost" (JAX,
    #: several machines); see `catdog.training.distribute`. batch_size is global.
    distribute: str = "none"
    #: multihost only; None reads KERAS_DISTRIBUTION_JOB_ADDRESSES,
    #: KERAS_DISTRIBUTION_NUM_PROCESSES and KERAS_DISTRIBUTION_PROCESS_ID.
    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None

    def __post_init__(self):
        positive = ("image_size", "batch_size")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("epochs", "fine_tune_epochs"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")
        if self.epochs + self.fine_tune_epochs < 1:
            raise ConfigError("nothing to train: epochs and fine-tune-epochs are both 0")
        if self.image_size < 32:
            raise ConfigError(f"image-size must be at least 32 (MobileNetV2), got {self.image_size}")
        for name in ("learning_rate", "fine_tune_learning_rate"):
            if not 0 < float(getattr(self, name)) < float("inf"):
                raise ConfigError(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be at least 1, got {self.limit}")
        if self.cache not in ("auto", "memory", "none") and not str(self.cache).strip():
            raise ConfigError("cache must be auto, memory, none or a file path prefix")
        if not 0 <= int(self.seed) < 2**32:
            raise ConfigError(f"seed must be an integer from 0 to 2**32 - 1, got {self.seed}")
        if self.verbose not in (0, 1, 2):
            raise ConfigError(f"verbose must be 0, 1 or 2, got {self.verbose!r}")
        if self.fine_tune_schedule not in FINE_TUNE_SCHEDULES:
            raise ConfigError(
                f"fine-tune-schedule must be one of {', '.join(FINE_TUNE_SCHEDULES)}, got {self.fine_tune_schedule!r}"
            )
        if not 0.0 <= float(self.label_smoothing) < 1.0:
            raise ConfigError(f"label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        backbone = canonical_backbone_name(self.backbone)
        if backbone is None:
            raise ConfigError(f"unknown backbone {self.backbone!r}: choose one of {', '.join(BACKBONE_NAMES)}")
        self.backbone = backbone
        if str(self.distribute).lower() not in DISTRIBUTE_CHOICES:
            raise ConfigError(f"distribute must be one of {', '.join(DISTRIBUTE_CHOICES)}, got {self.distribute!r}")

    @property
    def total_epochs(self):
        return self.epochs + self.fine_tune_epochs

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})
