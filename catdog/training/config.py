"""The training recipe as one plain, serializable object."""

import dataclasses
from dataclasses import dataclass

from catdog.defaults import (
    BACKBONE_NAMES,
    DEFAULT_BACKBONE,
    DEFAULT_COSINE_FINE_TUNE_LEARNING_RATE,
    DEFAULT_FINE_TUNE_SCHEDULE,
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

    One plain object, checked when it is made (a bad value raises
    `ConfigError` before anything is loaded), so that a run can be repeated,
    compared with the settings of an unfinished one, and resumed. `catdog
    train`'s options and `--config FILE.yaml` build one.

    Args:
        data: A folder with one sub-folder per class (`cat(s)/`, `dog(s)/`)
            or `"tfds:NAME"`. Defaults to `"tfds:cats_vs_dogs"`.
        out: The run folder. Defaults to `"runs/catdog"`.
        val_data: A separate validation folder. Defaults to `None`: a
            seeded, class-balanced `val_split` of `data`.
        val_split: Validation fraction when splitting `data`. Defaults to
            `0.2`.
        image_size: Side of the square model input (at least 32). Defaults
            to `224`.
        batch_size: Global batch size. Defaults to `32`.
        epochs: Stage-1 (head only) epochs. Defaults to `3`.
        fine_tune_epochs: Stage-2 epochs, in the same `fit()`. Defaults to
            `3`.
        fine_tune_at: First backbone layer trained in stage 2 (index, name
            or fraction). Defaults to `None`: the backbone's own (100 for
            MobileNetV2).
        learning_rate: Stage-1 Adam learning rate. Defaults to `1e-3`.
        fine_tune_learning_rate: Stage-2 Adam learning rate (with the
            cosine schedule, where it starts). Defaults to `2e-5`.
        fine_tune_schedule: `"cosine"` decays the stage-2 rate to 0 over
            stage 2, `"constant"` keeps it. Defaults to `"cosine"`: from
            2e-5, the mean rate of a constant 1e-5: better than it on
            validation, level on the shift suite (BENCHMARKS.md, "Recipes
            over seeds"); `constant` at `1e-5` is the recipe before 2026-12-02.
        label_smoothing: Share of each target spread evenly over the
            classes (two classes: 0 and 1 pulled towards 0.5 by it).
            Defaults to `0.0`.
        weights: `"imagenet"`, a weights file, or `None` (random). Defaults
            to `"imagenet"`.
        backbone: A name from `BACKBONES`, spelled loosely if you like.
            Defaults to `"MobileNetV2"`.
        alpha: Width multiplier of a MobileNet backbone. Defaults to `1.0`.
        dropout: Dropout rate before the head. Defaults to `0.2`.
        augmentation: Augment photos while fine-tuning (flip, rotation,
            zoom). Defaults to `True`.
        colour_augmentation: With `augmentation`, jitter colours and turn
            one photo in ten grey too (`DEFAULT_COLOUR_AUGMENTATION`; skipped
            for backbones fed per-channel normalised pixels). Defaults to
            `True`.
        augment_stage_one: Augment during stage 1 too. Defaults to `False`.
        limit: Use at most this many training images. Defaults to `None`
            (all).
        cache: Keep decoded images between epochs: `"auto"` (in memory when
            under 1 GiB), `"memory"`, `"none"` or a file path prefix.
            Defaults to `"auto"`.
        feature_cache: Remember the frozen backbone's features in stage 1
            (`StageOneFeatureCache`). Defaults to `True`.
        mixed_precision: Compute in float16 (for GPUs). Defaults to `False`.
        seed: Fixes the split, the shuffling, the initial weights and the
            augmentation. Defaults to `0`.
        overwrite: Replace a run already in `out`. Defaults to `False`.
        resume: Continue an unfinished run in `out` (started with the same
            settings) instead of refusing it. Defaults to `True`.
        verbose: 0 prints nothing but warnings, 1 Keras' progress bars, 2 one
            line per epoch (for log files). Defaults to `1`.
        distribute: `"none"`, `"mirrored"` (all GPUs of this machine) or
            `"multihost"` (JAX, several machines). Defaults to `"none"`.
        coordinator: Multihost only: the coordinator's address. Defaults to
            `None`: `KERAS_DISTRIBUTION_JOB_ADDRESSES`.
        num_processes: Multihost only. Defaults to `None`:
            `KERAS_DISTRIBUTION_NUM_PROCESSES`.
        process_id: Multihost only. Defaults to `None`:
            `KERAS_DISTRIBUTION_PROCESS_ID`.

    Example:

    >>> import catdog
    >>> config = catdog.TrainConfig(data="photos", epochs=2, fine_tune_epochs=1,
    ...                             backbone="efficientnet_b0")
    >>> config.backbone, config.total_epochs
    ('EfficientNetB0', 3)
    >>> catdog.TrainConfig.from_dict(config.to_dict()) == config
    True
    >>> try:
    ...     catdog.TrainConfig(batch_size=0)
    ... except catdog.ConfigError as error:
    ...     print(error)
    batch-size must be at least 1, got 0
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
    fine_tune_learning_rate: float = DEFAULT_COSINE_FINE_TUNE_LEARNING_RATE
    #: "cosine" decays the stage-2 rate to 0 over stage 2; "constant" keeps it
    fine_tune_schedule: str = DEFAULT_FINE_TUNE_SCHEDULE
    #: targets pulled towards 0.5 by this much in the loss (0: none)
    label_smoothing: float = 0.0
    weights: str | None = "imagenet"
    #: a name from catdog.backbones.BACKBONES
    backbone: str = DEFAULT_BACKBONE
    alpha: float = 1.0
    dropout: float = 0.2
    augmentation: bool = True
    #: with augmentation: colour jitter and greyscale too (catdog.defaults.DEFAULT_COLOUR_AUGMENTATION)
    colour_augmentation: bool = True
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
        """Every run setting is checked here, once: the library, `--config` files
        and the command line all build a `TrainConfig` (the command line's own
        parsers only turn text into numbers)."""
        for name in ("image_size", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}", field=name)
        for name in ("epochs", "fine_tune_epochs"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}", field=name)
        if self.epochs + self.fine_tune_epochs < 1:
            raise ConfigError("nothing to train: epochs and fine-tune-epochs are both 0")
        if self.image_size < 32:
            raise ConfigError(f"image-size must be at least 32 (MobileNetV2), got {self.image_size}", field="image_size")
        if not 0.0 <= float(self.val_split) <= 1.0:
            raise ConfigError(f"val-split must be between 0 and 1, got {self.val_split}", field="val_split")
        if str(self.data).startswith("tfds:"):
            from catdog.data.tfds_source import check_tfds_split

            check_tfds_split(self.data, self.val_data, self.val_split)
        for name in ("learning_rate", "fine_tune_learning_rate"):
            if not 0 < float(getattr(self, name)) < float("inf"):
                raise ConfigError(f"{name.replace('_', '-')} must be a positive number, got {getattr(self, name)}", field=name)
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be at least 1, got {self.limit}", field="limit")
        if self.cache not in ("auto", "memory", "none") and not str(self.cache).strip():
            raise ConfigError("cache must be auto, memory, none or a file path prefix", field="cache")
        if not 0 <= int(self.seed) < 2**32:
            raise ConfigError(f"seed must be an integer from 0 to 2**32 - 1, got {self.seed}", field="seed")
        if self.verbose not in (0, 1, 2):
            raise ConfigError(f"verbose must be 0, 1 or 2, got {self.verbose!r}", field="verbose")
        if self.fine_tune_schedule not in FINE_TUNE_SCHEDULES:
            raise ConfigError(
                f"fine-tune-schedule must be one of {', '.join(FINE_TUNE_SCHEDULES)}, got {self.fine_tune_schedule!r}",
                field="fine_tune_schedule",
            )
        if not 0.0 <= float(self.label_smoothing) < 1.0:
            raise ConfigError(f"label-smoothing must be in [0, 1), got {self.label_smoothing}", field="label_smoothing")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}", field="dropout")
        backbone = canonical_backbone_name(self.backbone)
        if backbone is None:
            raise ConfigError(
                f"unknown backbone {self.backbone!r}: choose one of {', '.join(BACKBONE_NAMES)}", field="backbone"
            )
        self.backbone = backbone
        if str(self.distribute).lower() not in DISTRIBUTE_CHOICES:
            raise ConfigError(
                f"distribute must be one of {', '.join(DISTRIBUTE_CHOICES)}, got {self.distribute!r}", field="distribute"
            )

    @property
    def total_epochs(self):
        return self.epochs + self.fine_tune_epochs

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})
