"""Fine-tune on your own photos: a folder with cat(s)/ and dog(s)/ sub-folders.

    python recipes/own_folder.py path/to/photos --out runs/mine
    python recipes/own_folder.py path/to/train --val-data path/to/val --out runs/mine

Without --val-data, 20% of each class is held out (seeded). Unreadable files
are skipped and listed in runs/mine/skipped.txt. Weights come from the
standard Keras cache ($KERAS_HOME, default ~/.keras) or --weights FILE.
"""

import argparse

import catdog


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="folder with cat(s)/ and dog(s)/ sub-folders")
    parser.add_argument("--val-data", help="separate validation folder")
    parser.add_argument("--out", default="runs/own-folder")
    parser.add_argument("--weights", default="imagenet", help="imagenet, none or a weights file")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--fine-tune-epochs", type=int, default=3)
    parser.add_argument("--limit", type=int, help="use at most N training images")
    args = parser.parse_args(argv)

    config = catdog.TrainConfig(
        data=args.data,
        val_data=args.val_data,
        out=args.out,
        weights=None if args.weights == "none" else args.weights,
        image_size=args.image_size,
        epochs=args.epochs,
        fine_tune_epochs=args.fine_tune_epochs,
        limit=args.limit,
    )
    try:
        result = catdog.train(config)
    except catdog.CatdogError as error:
        raise SystemExit(f"own_folder: {error}")
    print(f"validation accuracy {result.final['val_accuracy']:.4f}; artifacts in {result.run_dir}")
    return result


if __name__ == "__main__":
    main()
