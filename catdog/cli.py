"""The `catdog` command line: train, predict, evaluate, export.

Errors a user can fix are one line on stderr and exit code 2; nothing here
prints a traceback unless CATDOG_DEBUG=1.
"""

import argparse
import json
import os
import sys

EXIT_USAGE = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage dump."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text):
    value = _parse(int, text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text):
    value = _parse(int, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def positive_float(text):
    value = _parse(float, text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def seed_int(text):
    value = _parse(int, text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to 2**32 - 1, got {text}")
    return value


def probability(text):
    value = _parse(float, text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def weights_choice(text):
    if text.lower() == "imagenet":
        return "imagenet"
    if text.lower() == "none":
        return None
    if os.path.isfile(text):
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r} is not imagenet, none, or an existing weights file"
    )


def layer_choice(text):
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        fraction = float(text)
    except ValueError:
        return text
    if not 0.0 < fraction < 1.0:
        raise argparse.ArgumentTypeError(f"a fraction must be between 0 and 1, got {text}")
    return fraction


def _backbone_names():
    from catdog.backbones import backbone_names

    return backbone_names()


def backbone_choice(text):
    from catdog.backbones import get_spec
    from catdog.errors import ConfigError

    try:
        return get_spec(text).name
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parse(kind, text):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text}") from None


def build_parser():
    from catdog.config import TrainConfig

    defaults = TrainConfig()
    parser = OneLineParser(
        prog="catdog",
        description="Two-stage MobileNetV2 transfer learning for cats vs dogs.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    commands.required = True

    train = commands.add_parser("train", help="train a model and write a run folder")
    train.add_argument("--data", default=defaults.data, help="tfds:cats_vs_dogs, a folder with cat(s)/ and dog(s)/, or a folder with one sub-folder per class (default: %(default)s)")
    train.add_argument("--val-data", help="separate validation folder (default: a seeded split of --data)")
    train.add_argument("--val-split", type=probability, default=defaults.val_split, help="validation fraction when splitting a folder (default: %(default)s)")
    train.add_argument("--out", required=True, help="run folder for model.keras, history.json, curves.png")
    train.add_argument("--image-size", type=positive_int, default=defaults.image_size)
    train.add_argument("--batch-size", type=positive_int, default=defaults.batch_size)
    train.add_argument("--epochs", type=non_negative_int, default=defaults.epochs, help="stage-1 epochs, backbone frozen (default: %(default)s)")
    train.add_argument("--fine-tune-epochs", type=non_negative_int, default=defaults.fine_tune_epochs, help="stage-2 epochs (default: %(default)s)")
    train.add_argument("--backbone", type=backbone_choice, default=defaults.backbone, help=f"the pre-trained network: {', '.join(_backbone_names())} (default: %(default)s)")
    train.add_argument("--fine-tune-at", type=layer_choice, default=defaults.fine_tune_at, help="first backbone layer trained in stage 2: index, name or fraction of the layers (default: the backbone's; 100 for MobileNetV2)")
    train.add_argument("--lr", type=positive_float, default=defaults.learning_rate, help="stage-1 learning rate (default: %(default)s)")
    train.add_argument("--fine-tune-lr", type=positive_float, default=defaults.fine_tune_learning_rate, help="stage-2 learning rate (default: %(default)s)")
    train.add_argument("--weights", type=weights_choice, default="imagenet", help="imagenet, none, or a backbone weights file (default: imagenet)")
    train.add_argument("--no-augmentation", action="store_true", help="train without flip/rotation/zoom")
    train.add_argument("--augment-stage-one", action="store_true", help="augment while only the head trains too (default: only while fine-tuning, which measured better)")
    train.add_argument("--limit", type=positive_int, help="use at most N training images")
    train.add_argument("--cache", default=defaults.cache, help="keep decoded images between epochs: auto (in memory when under 1 GiB), memory, none, or a file path prefix (default: %(default)s)")
    train.add_argument("--no-feature-cache", action="store_true", help="recompute the frozen backbone's features every stage-1 epoch instead of remembering them after the first (same results, slower)")
    train.add_argument("--mixed-precision", action="store_true", help="float16 compute with a float32 output (GPUs; slower on CPUs)")
    train.add_argument("--seed", type=seed_int, default=defaults.seed, help="fixes the split, shuffling, augmentation and initial weights: the same seed and data give the same run on CPU (default: %(default)s)")
    train.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    train.add_argument("--resume", action="store_true", help="require an unfinished run in --out and continue it (the same command without --resume continues one too, and starts fresh when there is none)")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    add_distribute_arguments(train)

    predict = commands.add_parser("predict", help="the class (and P(dog), or the class's probability) of image files and folders")
    predict.add_argument("model", help="a catdog .keras file")
    predict.add_argument("paths", nargs="+", metavar="IMAGE_OR_DIR")
    predict.add_argument("--json", action="store_true", help="one JSON object per line")
    predict.add_argument("--batch-size", type=positive_int, default=32)
    predict.add_argument("--threshold", type=probability, default=0.5)
    predict.add_argument("--explain", metavar="DIR", help="write a Grad-CAM heat-map figure per image into DIR")

    evaluate = commands.add_parser("evaluate", help="metrics, figures and a report on labelled data")
    evaluate.add_argument("model", help="a catdog .keras file")
    evaluate.add_argument("--data", required=True, help="folder with a sub-folder per class of the model (cat(s)/ and dog(s)/), or tfds:cats_vs_dogs[:SPLIT] (default split: the recipe's validation part)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--out", metavar="DIR", help="also write metrics.json, the figures and report.html into DIR")
    evaluate.add_argument("--batch-size", type=positive_int, default=32)
    evaluate.add_argument("--threshold", type=probability, default=0.5, help="P(dog) from which an image is called a dog (default: %(default)s)")
    evaluate.add_argument("--tta", action="store_true", help="test-time augmentation: average P(dog) with the mirror image; reports both")
    add_export_parser(commands)
    return parser


def add_distribute_arguments(train):
    from catdog.distribute import CHOICES, ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID

    group = train.add_argument_group("several devices or machines (see README)")
    group.add_argument("--distribute", choices=CHOICES, default="none", help="none, mirrored (all GPUs of this machine, TensorFlow) or multihost (several machines, KERAS_BACKEND=jax); --batch-size is the global batch (default: none)")
    group.add_argument("--coordinator", metavar="HOST:PORT", help=f"multihost: address of process 0, the same on every machine (default: ${ENV_COORDINATOR})")
    group.add_argument("--num-processes", type=positive_int, metavar="N", help=f"multihost: number of processes (default: ${ENV_NUM_PROCESSES})")
    group.add_argument("--process-id", type=non_negative_int, metavar="I", help=f"multihost: this process, 0..N-1; 0 writes the run folder (default: ${ENV_PROCESS_ID})")


def add_export_parser(commands):
    from catdog.export import DEFAULT_CALIBRATION_IMAGES, FORMATS, QUANTIZATIONS

    export = commands.add_parser("export", help="export a model for serving: SavedModel, TFLite, ONNX")
    export.add_argument("model", help="a catdog .keras file")
    export.add_argument("--format", required=True, choices=FORMATS, help="savedmodel (a folder), tflite or onnx (a file)")
    export.add_argument("--out", required=True, help="the folder (savedmodel) or file (tflite, onnx) to write")
    export.add_argument("--quantize", choices=QUANTIZATIONS, help="tflite only: float16 weights, or int8 weights and activations (needs --calibration-data)")
    export.add_argument("--calibration-data", metavar="DIR", help="photos to calibrate int8 quantization with (folders are walked)")
    export.add_argument("--calibration-images", type=positive_int, default=DEFAULT_CALIBRATION_IMAGES, metavar="N", help="use at most N calibration photos (default: %(default)s)")
    export.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def run_train(args):
    from catdog.checkpoint import check_resume_request
    from catdog.config import TrainConfig
    from catdog.training import train

    check_resume_request(args.out, resume=args.resume, overwrite=args.overwrite)
    config = TrainConfig(
        data=args.data,
        val_data=args.val_data,
        val_split=args.val_split,
        out=args.out,
        image_size=args.image_size,
        batch_size=args.batch_size,
        epochs=args.epochs,
        fine_tune_epochs=args.fine_tune_epochs,
        fine_tune_at=args.fine_tune_at,
        backbone=args.backbone,
        learning_rate=args.lr,
        fine_tune_learning_rate=args.fine_tune_lr,
        weights=args.weights,
        augmentation=not args.no_augmentation,
        augment_stage_one=args.augment_stage_one,
        limit=args.limit,
        cache=args.cache,
        feature_cache=not args.no_feature_cache,
        mixed_precision=args.mixed_precision,
        seed=args.seed,
        overwrite=args.overwrite,
        resume=True,
        verbose=0 if args.quiet else 1,
        distribute=args.distribute,
        coordinator=args.coordinator,
        num_processes=args.num_processes,
        process_id=args.process_id,
    )
    result = train(config)
    final = result.final
    if not result.is_chief:
        print(f"catdog: trained {len(result.history)} epochs in {result.seconds:.0f} s; process 0 writes the run folder")
        return 0
    skipped = result.data.get("skipped", 0)
    print(
        f"catdog: trained {len(result.history)} epochs"
        + (f" (resumed after epoch {result.resumed_from})" if result.resumed_from else "")
        + f" in {result.seconds:.0f} s; "
        f"val_accuracy {final.get('val_accuracy', float('nan')):.4f}; "
        f"model: {os.path.join(result.run_dir, 'model.keras')}"
        + (f"; skipped {skipped} files (see {os.path.join(result.run_dir, 'skipped.txt')})" if skipped else "")
    )
    return 0


def run_predict(args):
    from catdog.inference import predict_files
    from catdog.loading import load_model

    model = load_model(args.model)
    predictions, skipped = predict_files(model, args.paths, args.batch_size, args.threshold)
    explanations = {}
    if args.explain and predictions:
        from catdog.gradcam import write_explanations

        explanations, failed = write_explanations(model, predictions, args.explain)
        skipped += failed
    for prediction in predictions:
        explanation = explanations.get(prediction.path)
        if args.json:
            row = prediction.to_dict()
            if args.explain:
                row["explanation"] = explanation
            print(json.dumps(row))
        else:
            extra = f"\t{explanation or '-'}" if args.explain else ""
            print(f"{prediction.path}\t{prediction.label}\t{prediction.score:.4f}{extra}")
    for item in skipped:
        print(f"catdog: skipped {item.path}: {item.reason}", file=sys.stderr)
    if not predictions:
        print("catdog: error: no image could be read", file=sys.stderr)
        return EXIT_USAGE
    return 0


def run_evaluate(args):
    from catdog.evaluation import evaluate, summary_lines, write_evaluation
    from catdog.loading import load_model
    from catdog.report import REPORT_FILE, write_report

    model = load_model(args.model)
    result = evaluate(model, args.data, threshold=args.threshold, batch_size=args.batch_size, tta=args.tta)
    if args.out:
        figures = write_evaluation(result, args.out, title=f"{os.path.basename(args.model)} on {args.data}")
        write_report(os.path.join(args.out, REPORT_FILE), result, figures, title=f"catdog evaluation of {args.model}")
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print("\n".join(summary_lines(result)))
        if args.out:
            print(f"wrote metrics.json, figures and {REPORT_FILE} to {args.out}")
    for item in result.skipped:
        print(f"catdog: skipped {item.path}: {item.reason}", file=sys.stderr)
    return 0


def run_export(args):
    from catdog.export import export_model

    result = export_model(
        args.model,
        args.out,
        format=args.format,
        quantize=args.quantize,
        calibration_data=args.calibration_data,
        calibration_images=args.calibration_images,
        overwrite=args.overwrite,
    )
    print(f"catdog: exported {result.describe()}")
    return 0


COMMANDS = {"train": run_train, "predict": run_predict, "evaluate": run_evaluate, "export": run_export}


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    from catdog.errors import CatdogError

    try:
        return COMMANDS[args.command](args)
    except CatdogError as error:
        print(f"catdog: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("catdog: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # last resort: one line, traceback on request
        if os.environ.get("CATDOG_DEBUG"):
            raise
        message = (str(error).strip().splitlines() or [""])[0][:300]
        print(
            f"catdog: unexpected error: {type(error).__name__}: {message} "
            "(set CATDOG_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
