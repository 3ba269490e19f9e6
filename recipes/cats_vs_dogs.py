"""The seed recipe, spelled out with the library API (no CLI, no hidden steps).

TFDS cats_vs_dogs, 80/20 split, 224x224, flip/rotation/zoom augmentation
(plus colour jitter and greyscale: CatDogClassifier's default, chosen on evidence);
MobileNetV2 pre-trained on ImageNet with a new head; stage 1 trains the head
(Adam 1e-3, backbone frozen), then FineTuneSwitch unfreezes the backbone from
layer 100 and fine-tunes with Adam at a rate falling from 2e-5 to 0 on a
cosine (a mean of 1e-5), all in one fit(). Run:

    python recipes/cats_vs_dogs.py --out runs/recipe

Offline? Add --data path/to/folder (cat(s)/ and dog(s)/ sub-folders).
--out must be new, empty or a folder catdog made: the recipe never
overwrites a model.keras it did not write.
"""

import argparse
import os

import catdog  # before Keras: it sets TF_CPP_MIN_LOG_LEVEL (oneDNN's banner still shows)
from catdog import claim_folder, load_splits, plot_training_curves, save_model

import keras  # noqa: E402


def positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="tfds:cats_vs_dogs")
    parser.add_argument("--out", default="runs/recipe")
    parser.add_argument("--weights", default="imagenet", help="imagenet, none or a weights file")
    parser.add_argument("--image-size", type=positive, default=224)
    parser.add_argument("--epochs", type=positive, default=3, help="stage-1 epochs")
    parser.add_argument("--fine-tune-epochs", type=positive, default=3, help="stage-2 epochs")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except catdog.CatdogError as error:  # offline, bad data, an --out that is not catdog's: one line
        raise SystemExit(f"cats_vs_dogs: {error}")


def run(args):
    claim_folder(args.out, "recipe")  # before the work, not after it
    keras.utils.set_random_seed(0)
    data = load_splits(args.data, image_size=args.image_size, batch_size=32, seed=0)
    print("data:", data.counts)

    weights = None if args.weights == "none" else args.weights
    model = catdog.CatDogClassifier(image_size=args.image_size, weights=weights, fine_tune_at=100)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    fine_tune_steps = data.steps_per_epoch * args.fine_tune_epochs

    def cosine_adam():  # stage 2's optimizer, made at the switch; chosen on evidence (BENCHMARKS.md)
        return keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(2e-5, decay_steps=fine_tune_steps))

    switch = catdog.FineTuneSwitch(switch_epoch=args.epochs, fine_tune_at=100, optimizer=cosine_adam)
    history = model.fit(
        data.train,
        validation_data=data.validation,
        epochs=args.epochs + args.fine_tune_epochs,
        callbacks=[switch],
    )

    save_model(model, os.path.join(args.out, "model.keras"))
    epochs = [
        {"epoch": i, **{key: values[i] for key, values in history.history.items()}}
        for i in range(len(history.epoch))
    ]
    plot_training_curves(epochs, os.path.join(args.out, "curves.png"), switch_epoch=args.epochs)
    print(f"val_accuracy after stage 1: {history.history['val_accuracy'][args.epochs - 1]:.4f}")
    print(f"val_accuracy after stage 2: {history.history['val_accuracy'][-1]:.4f}")
    print("saved", os.path.join(args.out, "model.keras"))
    return history


if __name__ == "__main__":
    main()
