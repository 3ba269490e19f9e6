"""Stage 1's shortcut: remember the frozen backbone's features of each photo.

While the backbone is frozen (always in inference mode) and stage 1 does not
augment, the pooled features of a photo are a pure function of its pixels:
every epoch after the first would recompute the same 1280 numbers through the
whole MobileNetV2. `StageOneFeatureCache` keeps them, keyed by a 64-bit
fingerprint of the raw pixels the model is given, so later stage-1 epochs and
their validation passes run the head only. Nothing about the data pipeline
changes: the same batches come in, in the same order, and the results are the
same numbers (dropout and the head see the same features).

Its limits, each of which makes the model compute features as usual:
- TensorFlow backend only (a hash table and in-place variable updates), not
  under a tf.distribute strategy and not with XLA (`jit_compile`).
- Augmented training batches (stage 2, or `augment_stage_one=True`) never
  use it: their pixels are new every epoch.
- It holds at most `capacity` photos; beyond that, features are computed.
The model's `unfreeze_backbone()` turns it off for good, so that no function
traced in stage 1 ever returns features of the backbone before fine-tuning.
"""

import keras

#: Bytes the cache may take by default: 100,000 photos' MobileNetV2 features.
DEFAULT_BUDGET_BYTES = 512 << 20


class FeatureCache:
    """Pooled backbone features by pixel fingerprint (TensorFlow state, not saved).

    `hits` and `misses` count photos served from the cache and computed.
    """

    def __init__(self, capacity, width):
        import tensorflow as tf

        self.capacity = int(capacity)
        self.width = int(width)
        self._tf = tf
        self.table = tf.lookup.experimental.MutableHashTable(
            key_dtype=tf.int64, value_dtype=tf.int64, default_value=-1
        )
        self.store = tf.Variable(tf.zeros((self.capacity, self.width)), trainable=False, name="feature_cache")
        self.stored = tf.Variable(0, dtype=tf.int64, trainable=False, name="feature_cache_stored")
        self.active = tf.Variable(True, trainable=False, name="feature_cache_active")
        self.hits = tf.Variable(0, dtype=tf.int64, trainable=False, name="feature_cache_hits")
        self.misses = tf.Variable(0, dtype=tf.int64, trainable=False, name="feature_cache_misses")

    def deactivate(self):
        self.active.assign(False)

    @property
    def is_active(self):
        return bool(self.active.numpy())

    def counts(self):
        """{"hits", "misses", "stored"} as Python ints."""
        return {name: int(getattr(self, name).numpy()) for name in ("hits", "misses", "stored")}

    def pooled(self, images, compute):
        """Features of `images`: from the cache when all are in it, else `compute()`.

        A batch is served whole or computed whole: within an epoch every
        photo is new (the first) or known (the later ones).
        """
        tf = self._tf
        keys = tf.reshape(tf.bitcast(tf.fingerprint(images), tf.int64), (-1,))
        slots = self.table.lookup(keys)
        known = tf.logical_and(self.active, tf.reduce_all(slots >= 0))
        n = tf.cast(tf.shape(keys)[0], tf.int64)

        def from_cache():
            with tf.control_dependencies([self.hits.assign_add(n)]):
                return tf.gather(self.store, slots)

        def computed():
            features = tf.cast(compute(), tf.float32)
            room = tf.logical_and(self.active, self.stored + n <= self.capacity)

            def remember():
                new_slots = self.stored + tf.range(n, dtype=tf.int64)
                with tf.control_dependencies(
                    [
                        self.store.scatter_nd_update(new_slots[:, None], features),
                        self.table.insert(keys, new_slots),
                    ]
                ):
                    return self.stored.assign_add(n)

            updated = tf.cond(room, remember, lambda: tf.identity(self.stored))
            with tf.control_dependencies([updated, self.misses.assign_add(n)]):
                return tf.identity(features)

        return tf.ensure_shape(tf.cond(known, from_cache, computed), (None, self.width))


class StageOneFeatureCache(keras.callbacks.Callback):
    """Serve stage 1's backbone features from memory after the first epoch.

    While the backbone is frozen and stage 1 does not augment, a photo's
    features never change: every epoch after the first would recompute the
    same numbers through the whole backbone. With this callback later stage-1
    epochs (and their validation) run the head only, with the same results.
    Add it to `fit()` with a catdog classifier in stage 1 (`train` does,
    unless `feature_cache=False`). It attaches a cache at the start of
    training when the model can use one (TensorFlow backend, no
    tf.distribute strategy, no XLA; otherwise it does nothing) and removes it
    at the switch to stage 2 and at the end of training.

    Args:
        capacity: Most photos to remember (training and validation). Defaults
            to `None`: as many as fit `budget_bytes`.
        budget_bytes: Memory for the features when `capacity` is `None`.
            Defaults to 512 MiB (100,000 photos of MobileNetV2's 1280 floats).
        verbose: 1 prints one line when it is used and what it served.
            Defaults to `0`.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> import catdog
    >>> backbone = keras.Sequential(  # a tiny backbone, for speed
    ...     [keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3, strides=2)], name="tiny")
    >>> model = catdog.ImageClassifier(
    ...     backbone=backbone, class_names=["cat", "dog"], preprocessing="tf", image_size=32)
    >>> model = catdog.compile_for_stage_one(model, learning_rate=1e-3)
    >>> images = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype="uint8")
    >>> cache = catdog.StageOneFeatureCache()
    >>> _ = model.fit(images, np.array([0, 1] * 4), epochs=2, batch_size=4, verbose=0,
    ...               callbacks=[cache])
    >>> cache.last_counts  # the first epoch computes the 8 photos, the second reuses them
    {'hits': 8, 'misses': 8, 'stored': 8}
    """

    def __init__(self, capacity=None, budget_bytes=DEFAULT_BUDGET_BYTES, verbose=0):
        super().__init__()
        self.capacity = capacity
        self.budget_bytes = int(budget_bytes)
        self.verbose = verbose
        self.cache = None
        self.last_counts = None

    def why_not(self, model):
        """The reason `model` cannot use a cache now, or None when it can."""
        if keras.backend.backend() != "tensorflow":
            return f"the {keras.backend.backend()} backend"
        if not hasattr(model, "attach_feature_cache"):
            return "the model has no feature-cache hook"
        if model.stage != 1:
            return "the backbone is already being fine-tuned"
        if _distributed(model):
            return "a tf.distribute strategy"
        if getattr(model, "jit_compile", False):
            return "XLA (jit_compile)"
        return None

    def on_train_begin(self, logs=None):
        reason = self.why_not(self.model)
        if reason is not None:
            if self.verbose:
                print(f"catdog: no stage-1 feature cache ({reason})")
            return
        width = self.model.feature_width
        capacity = self.capacity or max(1, self.budget_bytes // (4 * width))
        self.cache = FeatureCache(capacity, width)
        self.model.attach_feature_cache(self.cache)

    def on_epoch_begin(self, epoch, logs=None):
        if self.cache is not None and not self.cache.is_active:
            self._release()

    def on_train_end(self, logs=None):
        self._release()

    def _release(self):
        if self.cache is None:
            return
        self.last_counts = self.cache.counts()
        self.cache.deactivate()
        if getattr(self.model, "feature_cache", None) is self.cache:
            self.model.attach_feature_cache(None)
        if self.verbose:
            c = self.last_counts
            print(
                f"catdog: stage-1 feature cache served {c['hits']} photos and computed {c['misses']}"
            )
        self.cache = None


def _distributed(model):
    import tensorflow as tf

    strategy = getattr(model, "distribute_strategy", None) or tf.distribute.get_strategy()
    return tf.distribute.has_strategy() or type(strategy).__name__ != "_DefaultDistributionStrategy"
