"""Train another backbone on a folder with one sub-folder per class.

    python recipes/other_backbone.py path/to/photos --backbone EfficientNetB0 --out runs/breeds

`path/to/photos` holds one sub-folder per class (`abyssinian/`, `beagle/`,
...): the class names are the sorted folder names, saved in the model.
Two classes give one sigmoid output (P of the second class), more a softmax.
Each backbone gets its own preprocessing (as its `keras.applications`
`preprocess_input`) and its own default first fine-tuned layer. ImageNet
weights come from the standard Keras cache ($KERAS_HOME, default ~/.keras),
downloaded on first use, or `--weights none` for random ones.
"""

import argparse

import catdog
from catdog import BACKBONES


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="folder with one sub-folder per class")
    parser.add_argument("--backbone", default="EfficientNetB0", choices=list(BACKBONES))
    parser.add_argument("--val-data", help="separate validation folder (default: 20%% of each class)")
    parser.add_argument("--out", default="runs/other-backbone")
    parser.add_argument("--weights", default="imagenet", help="imagenet, none or a weights file")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--fine-tune-epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)

    config = catdog.TrainConfig(
        data=args.data,
        val_data=args.val_data,
        out=args.out,
        backbone=args.backbone,
        weights=None if args.weights == "none" else args.weights,
        image_size=args.image_size,
        epochs=args.epochs,
        fine_tune_epochs=args.fine_tune_epochs,
        batch_size=args.batch_size,
    )
    try:
        result = catdog.train(config)
    except catdog.CatdogError as error:
        raise SystemExit(f"other_backbone: {error}")
    classes = result.model.class_names
    print(
        f"{args.backbone} on {len(classes)} classes ({', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''}): "
        f"validation accuracy {result.final['val_accuracy']:.4f}; artifacts in {result.run_dir}"
    )
    return result


if __name__ == "__main__":
    main()
