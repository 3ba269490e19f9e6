"""The classifier: raw pixels -> class probabilities, with a two-stage trainable state.

Composed of parts in KerasHub's manner: a preprocessor that knows its
backbone's input convention, the backbone, and a head for N classes.
`CatDogClassifier` is the cats-vs-dogs default built on them.
"""

import contextlib
import re

import keras
from keras import ops

from catdog.backbones import DEFAULT_BACKBONE, build_backbone, default_fine_tune_at, preprocessing_for
from catdog.defaults import DEFAULT_COLOUR_AUGMENTATION
from catdog.errors import ConfigError
from catdog.finetune import freeze, resolve_cut, unfreeze_from
from catdog.folding import folded_forward
from catdog.layers import ImageAugmentation, ImagePreprocessor

#: Stage 1 trains the head on a frozen backbone; stage 2 fine-tunes its top.
HEAD_ONLY, FINE_TUNE = 1, 2


#: Class names of the cats-vs-dogs default (TFDS' and alphabetical order).
CAT_DOG = ("cat", "dog")


@keras.saving.register_keras_serializable(package="catdog")
class ImageClassifier(keras.Model):
    """Transfer-learning image classifier: raw pixels in, class probabilities out.

    preprocessing (the backbone's convention) -> augmentation (training only)
    -> backbone -> global average pooling -> dropout -> head. With two
    classes the head is one sigmoid unit, P(second class); with more, a
    softmax over them. `class_names` are saved with the model.

    By default augmentation runs only while fine-tuning: a linear head on
    frozen ImageNet features learns better from the photographs as they are
    (see the README's measurements), while the unfrozen backbone is what
    could memorise the training set.

    The backbone is always run in inference mode and its BatchNormalization
    layers never train: a Functional wrapper would not honour
    `training=False` once the backbone is unfrozen, and the moving statistics
    of a small dataset would wash out ImageNet's. The training stage and the
    first fine-tuned layer are part of `get_config()`, so a `.keras` round trip
    restores the trainable flags, and with them the optimizer state.

    Args:
        backbone: A name from `catdog.BACKBONES` (`"MobileNetV2"`,
            `"EfficientNetB0"`, ...) or a Keras model or layer mapping images
            of `image_size` to a feature map (saved inside the `.keras` file).
            Defaults to `"MobileNetV2"`.
        class_names: The classes, in label order (at least two), or their
            number (named `class_0`, `class_1`, ...). Required; defaults to
            `None`, which raises `ConfigError`.
        preprocessing: The backbone's input convention (an
            `ImagePreprocessor` mode). Defaults to `None`: the named
            backbone's own; required for a backbone object catdog does not
            recognise.
        image_size: Side of the square input the backbone sees. Defaults to
            `224`.
        alpha: Width multiplier of a MobileNet backbone. Defaults to `1.0`.
        weights: `"imagenet"`, a path to a backbone weights file, or `None`
            (random; for a named backbone). Defaults to `"imagenet"`.
        dropout: Dropout rate before the classifier. Defaults to `0.2`.
        augmentation: `True` for the recipe's augmentation (flip, rotation
            and zoom, plus colour jitter and greyscale where the backbone
            takes [-1, 1] or 0..255 pixels: `recipe_augmentation`), `False`
            or `None` for none, or a dict of `ImageAugmentation` arguments
            (`{}`: flip, rotation and zoom alone). Defaults to `True`.
        augment_stage_one: Augment while only the head trains, too. Defaults
            to `False`.
        fine_tune_at: First backbone layer (index, name or fraction) trained
            in stage 2. Defaults to `None`: the backbone's own (100 for
            MobileNetV2; the top third of a backbone catdog does not know).
        stage: 1 (backbone frozen) or 2 (top of the backbone trainable).
            Defaults to `1`.
        fold_batchnorm: Run the backbone with each (always frozen) BatchNorm
            folded into its convolution: the same function and gradients, less
            CPU time. Defaults to `True`.
        mixed_precision: Compute in float16 (variables and the output stay
            float32): for GPUs; on CPUs it is slower. Defaults to `False`.
        **kwargs: `keras.Model` keyword arguments, such as `name`.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> import catdog
    >>> backbone = keras.Sequential(  # any model from images to a feature map
    ...     [keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3, strides=2)], name="tiny")
    >>> model = catdog.ImageClassifier(
    ...     backbone=backbone, class_names=["ant", "bee", "wasp"],
    ...     preprocessing="tf", image_size=32)
    >>> probabilities = model.predict(np.zeros((2, 32, 32, 3), "uint8"), verbose=0)
    >>> probabilities.shape, probabilities.sum(axis=1).round(4).tolist()
    ((2, 3), [1.0, 1.0])
    >>> model.stage, backbone.trainable  # stage 1: only the head trains
    (1, False)
    """

    def __init__(
        self,
        backbone=DEFAULT_BACKBONE,
        class_names=None,
        preprocessing=None,
        image_size=224,
        alpha=1.0,
        weights="imagenet",
        dropout=0.2,
        augmentation=True,
        augment_stage_one=False,
        fine_tune_at=None,
        stage=HEAD_ONLY,
        fold_batchnorm=True,
        mixed_precision=False,
        **kwargs,
    ):
        if stage not in (HEAD_ONLY, FINE_TUNE):
            raise ConfigError(f"stage must be 1 or 2, got {stage!r}")
        self.class_names = _class_names(class_names)
        kwargs.setdefault("name", "image_classifier")
        self.mixed_precision = bool(mixed_precision)
        if self.mixed_precision:
            kwargs["dtype"] = "mixed_float16"
        super().__init__(**kwargs)
        with _global_dtype_policy("mixed_float16" if self.mixed_precision else None):
            self._build_layers(backbone, preprocessing, image_size, alpha, weights, dropout, augmentation)
        self.augment_stage_one = bool(augment_stage_one)
        self.fold_batchnorm = bool(fold_batchnorm)
        # Not a Layer: Keras neither tracks nor saves it.
        self._backbone_forward = folded_forward(self.backbone) if self.fold_batchnorm else None

        if fine_tune_at is None:
            fine_tune_at = default_fine_tune_at(self.backbone)
            if fine_tune_at is None:  # an unknown backbone: its top third
                fine_tune_at = 2.0 / 3.0
        self.fine_tune_at = self.backbone_layer_index(fine_tune_at)
        self.stage = HEAD_ONLY
        if stage == FINE_TUNE:
            self.unfreeze_backbone(self.fine_tune_at)
        else:
            self.freeze_backbone()

    def _build_layers(self, backbone, preprocessing, image_size, alpha, weights, dropout, augmentation):
        self.image_size = int(image_size)
        self.alpha = float(alpha)
        self.weights_source = weights
        self.dropout_rate = float(dropout)
        self.backbone_name = backbone if isinstance(backbone, str) else None
        self.preprocessing = preprocessing or preprocessing_for(backbone)
        self.augmentation_config = _augmentation_kwargs(augmentation, self.preprocessing)

        self.preprocessor = ImagePreprocessor(self.image_size, mode=self.preprocessing, name="preprocessor")
        self.augmenter = (
            ImageAugmentation(
                **self.augmentation_config, **_colour_range(self.augmentation_config, self.preprocessing),
                name="augmentation",
            )
            if self.augmentation_config is not None
            else None
        )
        if isinstance(backbone, str):
            self.backbone = build_backbone(backbone, self.image_size, weights, self.alpha)
        elif isinstance(backbone, keras.layers.Layer):
            self.backbone = backbone
        else:
            raise ConfigError(f"backbone must be a name or a Keras model, got {type(backbone).__name__}")
        self.pool = keras.layers.GlobalAveragePooling2D(name="pool")
        self.head_dropout = keras.layers.Dropout(self.dropout_rate, name="dropout")
        # float32 output keeps probabilities exact under mixed precision.
        binary = len(self.class_names) == 2
        self.classifier = keras.layers.Dense(
            1 if binary else len(self.class_names),
            activation="sigmoid" if binary else "softmax",
            dtype="float32",
            name=_output_name(self.class_names),
        )
        self.build((None, self.image_size, self.image_size, 3))

    def build(self, input_shape=None):
        size = (None, self.image_size, self.image_size, 3)
        self.preprocessor.build(size)
        if self.augmenter is not None:
            self.augmenter.build(size)
        features = self.backbone.compute_output_shape(size)
        self.pool.build(features)
        self.head_dropout.build((None, features[-1]))
        self.classifier.build((None, features[-1]))
        self.built = True

    #: A `catdog.training.feature_cache.FeatureCache` while stage 1 uses one.
    feature_cache = None

    def call(self, images, training=None):
        augments = bool(training) and self.augments_now
        if self.feature_cache is not None and self.stage == HEAD_ONLY and not augments:
            pooled = self.feature_cache.pooled(
                images, lambda: self.pool(self.features(self.preprocessor(images)))
            )
            return self.classify(ops.cast(pooled, self.pool.compute_dtype), training=training)
        x = self.preprocessor(images)
        if self.augments_now:
            # `stage` is read when the train function is traced; the stage
            # switch rebuilds that function (see `FineTuneSwitch`).
            x = self.augmenter(x, training=training)
        return self.head(self.features(x), training=training)

    def attach_feature_cache(self, cache):
        """Serve stage 1's pooled features from `cache` (None: stop).

        The cache is read when a function is traced: attach it before `fit()`
        (as `StageOneFeatureCache` does). It is no state of the model, so
        neither tracked nor saved.
        """
        object.__setattr__(self, "feature_cache", cache)

    @property
    def feature_width(self):
        """Length of the pooled feature vector the head reads."""
        return int(self.classifier.kernel.shape[0])

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def augments_now(self):
        """Whether a training call in the current stage augments."""
        return self.augmenter is not None and (self.stage == FINE_TUNE or self.augment_stage_one)

    def features(self, x):
        """Backbone feature map of preprocessed images, always in inference mode."""
        if self._backbone_forward is not None:
            return self._backbone_forward(x)
        return self.backbone(x, training=False)

    def head(self, features, training=None):
        """Backbone feature map -> probabilities; split out for Grad-CAM and caching."""
        return self.classify(self.pool(features), training=training)

    def classify(self, pooled, training=None):
        """Pooled features -> probabilities."""
        return self.classifier(self.head_dropout(pooled, training=training))

    def compute_output_shape(self, input_shape):
        return (input_shape[0] if len(input_shape) == 4 else 1, self.classifier.units)

    # --- freezing ---------------------------------------------------------

    def backbone_layer_index(self, layer):
        """Index of a backbone layer given by index, name or fraction (see `resolve_cut`)."""
        if isinstance(layer, int) and not isinstance(layer, bool) and layer < 0:
            raise ConfigError(f"fine_tune_at must be a layer index in 0..{len(self.backbone.layers) - 1}, got {layer}")
        return resolve_cut(self.backbone, layer)

    def freeze_backbone(self):
        """Stage 1: only the head trains."""
        freeze(self.backbone)
        self.stage = HEAD_ONLY

    def unfreeze_backbone(self, from_layer=None):
        """Stage 2: backbone layers from `from_layer` on train, BatchNorm never.

        Call `FineTuneSwitch` (or rebuild the optimizer and train function
        yourself) after this during `fit()`: Keras does not notice on its own.
        """
        index = self.backbone_layer_index(
            self.fine_tune_at if from_layer is None else from_layer
        )
        if self.feature_cache is not None:
            # Functions traced in stage 1 may still be called (validation):
            # make them compute features from the backbone being fine-tuned.
            self.feature_cache.deactivate()
            self.attach_feature_cache(None)
        unfreeze_from(self.backbone, index)
        self.fine_tune_at = index
        self.stage = FINE_TUNE

    # --- saving -----------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "backbone": self.backbone_name or keras.saving.serialize_keras_object(self.backbone),
                "class_names": list(self.class_names),
                "preprocessing": self.preprocessing,
                "image_size": self.image_size,
                "alpha": self.alpha,
                "weights": self.weights_source,
                "dropout": self.dropout_rate,
                "augmentation": self.augmentation_config,
                "augment_stage_one": self.augment_stage_one,
                "fine_tune_at": self.fine_tune_at,
                "stage": self.stage,
                "fold_batchnorm": self.fold_batchnorm,
                "mixed_precision": self.mixed_precision,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        # The saved file carries the trained weights: never fetch ImageNet's.
        config = dict(config)
        weights_source = config.pop("weights", None)
        if config.get("mixed_precision"):
            config.pop("dtype", None)  # set again from mixed_precision
        if isinstance(config.get("backbone"), dict):
            config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        model = cls(weights=None, **config)
        model.weights_source = weights_source
        return model

    def get_compile_config(self):
        # Keras records the optimizer given to compile(); after a stage switch
        # the model trains with another one, and that is the one to restore.
        config = super().get_compile_config()
        if config and getattr(self, "optimizer", None) is not None:
            config["optimizer"] = keras.saving.serialize_keras_object(self.optimizer)
        return config


@keras.saving.register_keras_serializable(package="catdog")
class CatDogClassifier(ImageClassifier):
    """The cats-vs-dogs default: MobileNetV2, classes ("cat", "dog"), output P(dog).

    Exactly the model catdog has always trained (files written before
    backbones and classes were configurable load as this class): an
    `ImageClassifier` with these defaults, any of which can be changed.

    Args:
        backbone: As in `ImageClassifier`. Defaults to `"MobileNetV2"`.
        class_names: As in `ImageClassifier`. Defaults to `("cat", "dog")`.
        **kwargs: Any other `ImageClassifier` argument (`image_size`,
            `weights`, `fine_tune_at`, ...).

    Example:

    >>> import numpy as np
    >>> import catdog
    >>> # weights=None: random weights, nothing to download; real use keeps "imagenet".
    >>> model = catdog.CatDogClassifier(image_size=32, alpha=0.35, weights=None)
    >>> model.class_names, model.stage, model.fine_tune_at
    (['cat', 'dog'], 1, 100)
    >>> model.predict(np.zeros((2, 32, 32, 3), "uint8"), verbose=0).shape  # P(dog)
    (2, 1)
    >>> model.unfreeze_backbone()  # stage 2; FineTuneSwitch does it inside fit()
    >>> model.stage, model.backbone.layers[100].trainable, model.backbone.layers[99].trainable
    (2, True, False)
    """

    def __init__(self, backbone=DEFAULT_BACKBONE, class_names=CAT_DOG, **kwargs):
        kwargs.setdefault("name", "catdog")
        super().__init__(backbone=backbone, class_names=class_names, **kwargs)


def _class_names(class_names):
    if class_names is None:
        raise ConfigError("class_names are needed: the classes in label order, at least two")
    if isinstance(class_names, int):
        class_names = [f"class_{i}" for i in range(class_names)]
    names = [str(name) for name in class_names]
    if len(names) < 2 or len(set(names)) != len(names):
        raise ConfigError(f"class_names must be at least two distinct names, got {names}")
    return names


def _output_name(class_names):
    """'p_dog' for cats vs dogs (as always), 'p_<second class>' for two, 'probabilities' for more."""
    if len(class_names) > 2:
        return "probabilities"
    return "p_" + (re.sub(r"[^0-9A-Za-z_]+", "_", class_names[1]).strip("_") or "positive")


@contextlib.contextmanager
def _global_dtype_policy(name):
    """Build sublayers (the Keras application included) under a dtype policy."""
    if name is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _augmentation_kwargs(augmentation, mode):
    if augmentation is True:
        return recipe_augmentation(mode)
    if augmentation is None or augmentation is False:
        return None
    if isinstance(augmentation, dict):
        return dict(augmentation)
    raise ConfigError(f"augmentation must be a bool or a dict, got {augmentation!r}")



def probability_matrix(outputs):
    """Model outputs as (n, N) class probabilities: (n, 1) P(second) -> [1 - p, p]."""
    import numpy as np

    outputs = np.asarray(outputs, np.float64)
    if outputs.ndim == 1 or outputs.shape[-1] == 1:
        p = outputs.reshape(-1)
        return np.stack([1.0 - p, p], axis=1)
    return outputs


#: The pixel range each preprocessing mode hands the augmentation, where one
#: range describes every channel (torch and caffe normalise each channel
#: apart, and caffe swaps to BGR: no colour jitter or greyscale is right there).
_MODE_RANGES = {"tf": (-1.0, 1.0), "none": (0.0, 255.0)}


def recipe_augmentation(mode):
    """`ImageAugmentation` arguments of `augmentation=True` for a preprocessing mode.

    Flip, rotation and zoom (the layer's defaults) plus the recipe's colour
    jitter and greyscale (`DEFAULT_COLOUR_AUGMENTATION`) where one value range
    describes every channel; per-channel normalised backbones (torch, caffe)
    get the geometric steps alone.
    """
    return dict(DEFAULT_COLOUR_AUGMENTATION) if mode in _MODE_RANGES else {}


def _colour_range(augmentation, mode):
    """`value_range` for the colour steps of `augmentation`; {} when there are none."""
    if "value_range" in augmentation or not (augmentation.get("color_jitter") or augmentation.get("grayscale")):
        return {}
    if mode not in _MODE_RANGES:
        raise ConfigError(
            f"color_jitter and grayscale augmentation need a backbone fed 0..255 or [-1, 1] pixels; "
            f"this one's preprocessing is {mode!r} (per-channel normalised): leave them off"
        )
    return {"value_range": _MODE_RANGES[mode]}
