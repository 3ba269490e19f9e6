"""The TensorFlow transfer-learning tutorial's way, as the baseline to beat.

Its pipeline (`image_dataset_from_directory`, `prefetch`), its Functional
model (augmentation layers -> `preprocess_input` -> MobileNetV2 called with
`training=False` -> pooling -> dropout -> a logit) and its recipe (Adam 1e-4
for 10 epochs, then the backbone unfrozen from layer 100 and RMSprop 1e-5 for
10 more), at catdog's image size and batch size so that only the way differs.
"""

import keras
import tensorflow as tf

from catdog.backbones import build_mobilenet_v2

BASE_LEARNING_RATE = 1e-4
FINE_TUNE_AT = 100


def tutorial_dataset(directory, image_size, batch_size, shuffle=True, seed=0):
    dataset = keras.utils.image_dataset_from_directory(
        directory,
        shuffle=shuffle,
        batch_size=batch_size,
        image_size=(image_size, image_size),
        seed=seed,
        verbose=False,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def tutorial_model(image_size, weights="imagenet"):
    base = build_mobilenet_v2(image_size, 1.0, weights)
    base.trainable = False
    augmentation = keras.Sequential(
        [keras.layers.RandomFlip("horizontal"), keras.layers.RandomRotation(0.2)]
    )
    inputs = keras.Input(shape=(image_size, image_size, 3))
    x = augmentation(inputs)
    x = keras.applications.mobilenet_v2.preprocess_input(x)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(1)(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=BASE_LEARNING_RATE),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")],
    )
    return model, base


def start_fine_tuning(model, base):
    """The tutorial's stage 2: unfreeze from layer 100, recompile with RMSprop."""
    base.trainable = True
    for layer in base.layers[:FINE_TUNE_AT]:
        layer.trainable = False
    model.compile(
        optimizer=keras.optimizers.RMSprop(learning_rate=BASE_LEARNING_RATE / 10),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")],
    )
