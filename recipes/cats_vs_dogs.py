"""The seed recipe, spelled out with the library API (no CLI, no hidden steps).

TFDS cats_vs_dogs, 80/20 split, 224x224, flip/rotation/zoom augmentation;
MobileNetV2 pre-trained on ImageNet with a new head; stage 1 trains the head
(Adam 1e-3, backbone frozen), then FineTuneSwitch unfreezes the backbone from
layer 100 and fine-tunes at 1e-5, all in one fit(). Run:

    python recipes/cats_vs_dogs.py --out runs/recipe

Offline? Add --data path/to/folder (cat(s)/ and dog(s)/ sub-folders).
"""

import argparse
import os

import keras

import catdog
from catdog import load_splits, plot_training_curves, save_model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="tfds:cats_vs_dogs")
    parser.add_argument("--out", default="runs/recipe")
    parser.add_argument("--epochs", type=int, default=3, help="stage-1 epochs")
    parser.add_argument("--fine-tune-epochs", type=int, default=3, help="stage-2 epochs")
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    data = load_splits(args.data, image_size=224, batch_size=32, seed=0)
    print("data:", data.counts)

    model = catdog.CatDogClassifier(image_size=224, weights="imagenet", fine_tune_at=100)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    switch = catdog.FineTuneSwitch(switch_epoch=args.epochs, fine_tune_at=100, learning_rate=1e-5)
    history = model.fit(
        data.train,
        validation_data=data.validation,
        epochs=args.epochs + args.fine_tune_epochs,
        callbacks=[switch],
    )

    os.makedirs(args.out, exist_ok=True)
    save_model(model, os.path.join(args.out, "model.keras"))
    epochs = [
        {"epoch": i, **{key: values[i] for key, values in history.history.items()}}
        for i in range(len(history.epoch))
    ]
    plot_training_curves(epochs, os.path.join(args.out, "curves.png"), switch_epoch=args.epochs)
    print(f"val_accuracy after stage 1: {history.history['val_accuracy'][args.epochs - 1]:.4f}")
    print(f"val_accuracy after stage 2: {history.history['val_accuracy'][-1]:.4f}")
    print("saved", os.path.join(args.out, "model.keras"))


if __name__ == "__main__":
    main()
