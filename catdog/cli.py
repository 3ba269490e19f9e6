"""The `catdog` command line: train, predict, evaluate, export.

Errors a user can fix are one line on stderr and exit code 2; nothing here
prints a traceback unless CATDOG_DEBUG=1.
"""

import argparse
import contextlib
import json
import os
import sys

from catdog.errors import ConfigError

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
    from catdog.defaults import BACKBONE_NAMES

    return BACKBONE_NAMES


def integer(text):
    """Text to an int; whether it is in range is `TrainConfig`'s to say."""
    return _parse(int, text)


def number(text):
    """Text to a float; whether it is in range is `TrainConfig`'s to say."""
    return _parse(float, text)


def _parse(kind, text):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text}") from None


def build_parser():
    from catdog.training.config import TrainConfig

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
    train.add_argument("--val-split", type=number, default=defaults.val_split, help="validation fraction when splitting a folder (default: %(default)s)")
    train.add_argument("--config", metavar="FILE", help="read settings from a JSON or YAML file with TrainConfig's keys, such as a run's own config.json; options given here win (see README)")
    train.add_argument("--out", help="run folder for model.keras, history.json, curves.png, logs/ (required unless --config gives out)")
    train.add_argument("--image-size", type=integer, default=defaults.image_size)
    train.add_argument("--batch-size", type=integer, default=defaults.batch_size)
    train.add_argument("--epochs", type=integer, default=defaults.epochs, help="stage-1 epochs, backbone frozen (default: %(default)s)")
    train.add_argument("--fine-tune-epochs", type=integer, default=defaults.fine_tune_epochs, help="stage-2 epochs (default: %(default)s)")
    train.add_argument("--backbone", default=defaults.backbone, help=f"the pre-trained network: {', '.join(_backbone_names())} (default: %(default)s)")
    train.add_argument("--fine-tune-at", type=layer_choice, default=defaults.fine_tune_at, help="first backbone layer trained in stage 2: index, name or fraction of the layers (default: the backbone's; 100 for MobileNetV2)")
    train.add_argument("--lr", type=number, default=defaults.learning_rate, help="stage-1 learning rate (default: %(default)s)")
    train.add_argument("--fine-tune-lr", type=number, default=defaults.fine_tune_learning_rate, help="stage-2 learning rate; with the cosine schedule, where it starts (default: %(default)s)")
    train.add_argument("--fine-tune-schedule", choices=("constant", "cosine"), default=defaults.fine_tune_schedule, help="stage-2 learning rate: a cosine decay to 0 over stage 2, or constant (default: %(default)s; the recipe before 2026-12-02: constant with --fine-tune-lr 1e-5)")
    train.add_argument("--label-smoothing", type=number, default=defaults.label_smoothing, help="spread this share of each target evenly over the classes (two: 0 and 1 pulled towards 0.5), e.g. 0.1 (default: %(default)s)")
    train.add_argument("--weights", type=weights_choice, default="imagenet", help="imagenet, none, or a backbone weights file (default: imagenet)")
    train.add_argument("--no-augmentation", action="store_true", help="train without flip/rotation/zoom (and without colour augmentation)")
    train.add_argument("--no-colour-augmentation", action="store_true", help="augment with flip/rotation/zoom alone, without colour jitter and greyscale (the default until 2026-12-02)")
    train.add_argument("--augment-stage-one", action="store_true", help="augment while only the head trains too (default: only while fine-tuning, which measured better)")
    train.add_argument("--limit", type=integer, help="use at most N training images")
    train.add_argument("--cache", default=defaults.cache, help="keep decoded images between epochs: auto (in memory when under 1 GiB), memory, none, or a file path prefix (default: %(default)s)")
    train.add_argument("--no-feature-cache", action="store_true", help="recompute the frozen backbone's features every stage-1 epoch instead of remembering them after the first (same results, slower)")
    train.add_argument("--mixed-precision", action="store_true", help="float16 compute with a float32 output (GPUs; slower on CPUs)")
    train.add_argument("--seed", type=integer, default=defaults.seed, help="fixes the split, shuffling, augmentation and initial weights: the same seed and data give the same run on CPU (default: %(default)s)")
    train.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    train.add_argument("--resume", action="store_true", help="require an unfinished run in --out and continue it (the same command without --resume continues one too, and starts fresh when there is none)")
    train.add_argument("--verbose", type=int, choices=(0, 1, 2), help="0: quiet, 1: progress bars, 2: one line per epoch (default: 1 on a terminal, else 2)")
    train.add_argument("--quiet", dest="verbose", action="store_const", const=0, help="the same as --verbose 0")
    add_distribute_arguments(train)
    # TrainConfig keys without an option of their own: only a --config file sets them.
    train.set_defaults(alpha=defaults.alpha, dropout=defaults.dropout)

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
    add_shift_arguments(evaluate)
    add_export_parser(commands)
    add_serve_parser(commands)
    parser.command_parsers = commands.choices
    return parser


def add_distribute_arguments(train):
    from catdog.defaults import DISTRIBUTE_CHOICES as CHOICES, ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID

    group = train.add_argument_group("several devices or machines (see README)")
    group.add_argument("--distribute", choices=CHOICES, default="none", help="none, mirrored (all GPUs of this machine, TensorFlow) or multihost (several machines, KERAS_BACKEND=jax); --batch-size is the global batch (default: none)")
    group.add_argument("--coordinator", metavar="HOST:PORT", help=f"multihost: address of process 0, the same on every machine (default: ${ENV_COORDINATOR})")
    group.add_argument("--num-processes", type=positive_int, metavar="N", help=f"multihost: number of processes (default: ${ENV_NUM_PROCESSES})")
    group.add_argument("--process-id", type=non_negative_int, metavar="I", help=f"multihost: this process, 0..N-1; 0 writes the run folder (default: ${ENV_PROCESS_ID})")


def add_shift_arguments(evaluate):
    group = evaluate.add_argument_group("robustness to distribution shift (see README)")
    group.add_argument("--shifts", action="store_true", help="also report accuracy under a fixed, seeded suite of shifts: ImageNet-C noise, blur, JPEG, brightness, contrast; greyscale, rotations, off-centre crops, zoom, low resolution, mirror images")
    group.add_argument("--shift-only", metavar="NAMES", type=lambda text: [n for n in text.split(",") if n.strip()], help="comma-separated shifts or families to run, e.g. gaussian_noise,mirror (implies --shifts)")
    group.add_argument("--shift-limit", type=positive_int, metavar="N", help="run the shifts on a seeded sample of at most N images (implies --shifts)")
    group.add_argument("--shift-seed", type=seed_int, default=0, metavar="S", help="seed of the suite's random choices and of the --shift-limit sample (default: %(default)s)")


def add_export_parser(commands):
    from catdog.defaults import DEFAULT_CALIBRATION_IMAGES, QUANTIZATIONS, EXPORT_FORMATS as FORMATS

    export = commands.add_parser("export", help="export a model for serving: SavedModel, TFLite, ONNX")
    export.add_argument("model", help="a catdog .keras file")
    export.add_argument("--format", required=True, choices=FORMATS, help="savedmodel (a folder), tflite or onnx (a file)")
    export.add_argument("--out", required=True, help="the folder (savedmodel) or file (tflite, onnx) to write")
    export.add_argument("--quantize", choices=QUANTIZATIONS, help="tflite only: float16 weights, or int8 weights and activations (needs --calibration-data)")
    export.add_argument("--calibration-data", metavar="DIR", help="photos to calibrate int8 quantization with (folders are walked)")
    export.add_argument("--calibration-images", type=positive_int, default=DEFAULT_CALIBRATION_IMAGES, metavar="N", help="use at most N calibration photos (default: %(default)s)")
    export.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def add_serve_parser(commands):
    serve = commands.add_parser("serve", help="an HTTP API and a web page for a model, batching concurrent requests")
    serve.add_argument("model", help="a catdog .keras file")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s, this machine only)")
    serve.add_argument("--port", type=non_negative_int, default=8000, help="TCP port; 0 picks a free one (default: %(default)s)")
    serve.add_argument("--max-batch", type=positive_int, default=32, help="most images per model call (default: %(default)s)")
    serve.add_argument("--max-wait-ms", type=non_negative_float, default=5.0, help="how long a request waits for others to share its model call (default: %(default)s)")
    serve.add_argument("--max-upload-mb", type=positive_float, default=20.0, help="largest request body, in MB (default: %(default)s)")
    serve.add_argument("--read-timeout", type=positive_float, default=10.0, metavar="S", help="seconds a client may stay silent while sending a request (default: %(default)s)")


def non_negative_float(text):
    value = _parse(float, text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value



#: TrainConfig fields whose option is not `--` + the field's name.
_FIELD_OPTIONS = {
    "learning_rate": "--lr",
    "fine_tune_learning_rate": "--fine-tune-lr",
    "augmentation": "--no-augmentation",
    "colour_augmentation": "--no-colour-augmentation",
    "feature_cache": "--no-feature-cache",
}


@contextlib.contextmanager
def _named_options(args):
    """A `TrainConfig` error names the option the user typed (`--lr`), not the field."""
    try:
        yield
    except ConfigError as error:
        if error.field is None:
            raise
        option = _FIELD_OPTIONS.get(error.field, "--" + error.field.replace("_", "-"))
        raise ConfigError(f"{option}: {error}", field=error.field) from None


def run_train(args):
    from catdog.training.run_folder import MODEL_FILE, SKIPPED_FILE, check_resume_request
    from catdog.training.config import TrainConfig

    check_resume_request(args.out, resume=args.resume, overwrite=args.overwrite)
    with _named_options(args):
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
            alpha=args.alpha,
            dropout=args.dropout,
            learning_rate=args.lr,
            fine_tune_learning_rate=args.fine_tune_lr,
            fine_tune_schedule=args.fine_tune_schedule,
            label_smoothing=args.label_smoothing,
            weights=args.weights,
            augmentation=not args.no_augmentation,
            colour_augmentation=not args.no_colour_augmentation,
            augment_stage_one=args.augment_stage_one,
            limit=args.limit,
            cache=args.cache,
            feature_cache=not args.no_feature_cache,
            mixed_precision=args.mixed_precision,
            seed=args.seed,
            overwrite=args.overwrite,
            resume=True,
            verbose=args.verbose,
            distribute=args.distribute,
            coordinator=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    from catdog.training.train import train  # after the checks: a bad option needs no TensorFlow

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
        f"model: {os.path.join(result.run_dir, MODEL_FILE)}"
        + (f"; skipped {skipped} files (see {os.path.join(result.run_dir, SKIPPED_FILE)})" if skipped else "")
    )
    return 0


def run_predict(args):
    from catdog.loading import check_model_file

    check_model_file(args.model)  # before TensorFlow's import: a mistyped path is answered at once
    from catdog.serving.inference import predict_files
    from catdog.loading import load_model
    from catdog.names import escape

    if args.explain:  # a folder catdog may not write into fails before any work
        from catdog.ownership import EXPLANATIONS, claim_folder

        claim_folder(args.explain, EXPLANATIONS, option="--explain")
    model = load_model(args.model)
    predictions, skipped = predict_files(model, args.paths, args.batch_size, args.threshold)
    explanations = {}
    if args.explain and predictions:
        from catdog.evaluation.figures import write_explanations

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
            # names escaped (catdog.names.escape): a tab or newline in one cannot forge a row
            extra = f"\t{escape(explanation) if explanation else '-'}" if args.explain else ""
            print(f"{escape(prediction.path)}\t{escape(prediction.label)}\t{prediction.score:.4f}{extra}")
    for item in skipped:
        print(f"catdog: skipped {escape(item.path)}: {escape(item.reason)}", file=sys.stderr)
    if not predictions:
        print("catdog: error: no image could be read", file=sys.stderr)
        return EXIT_USAGE
    return 0


def run_evaluate(args):
    from catdog.loading import check_model_file

    check_model_file(args.model)  # before TensorFlow's import
    from catdog.evaluation.evaluate import evaluate, summary_lines, write_evaluation
    from catdog.loading import load_model
    from catdog.evaluation.files import REPORT_FILE
    from catdog.evaluation.report import write_report

    if args.out:  # refused before any work when it is not catdog's (catdog.ownership)
        from catdog.ownership import EVALUATION, claim_folder

        claim_folder(args.out, EVALUATION)
    shifts = args.shifts or args.shift_only or args.shift_limit
    if shifts:
        from catdog.evaluation.robustness.evaluation import evaluate_shifts
        from catdog.evaluation.robustness.suite import select

        select(args.shift_only)  # an unknown name fails before any work
    model = load_model(args.model)
    result = evaluate(model, args.data, threshold=args.threshold, batch_size=args.batch_size, tta=args.tta)
    if shifts:
        result.robustness = evaluate_shifts(
            model, args.data, shifts=args.shift_only, seed=args.shift_seed, limit=args.shift_limit,
            threshold=args.threshold, batch_size=args.batch_size, tta=args.tta,
        )
    if args.out:
        figures = write_evaluation(result, args.out, title=f"{os.path.basename(args.model)} on {args.data}")
        write_report(os.path.join(args.out, REPORT_FILE), result, figures, title=f"catdog evaluation of {args.model}")
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print("\n".join(summary_lines(result)))
        if result.robustness is not None:
            from catdog.evaluation.robustness.evaluation import summary_lines as shift_lines

            print("\n".join(shift_lines(result.robustness)))
        if args.out:
            print(f"wrote metrics.json, figures and {REPORT_FILE} to {args.out}")
    from catdog.names import escape

    for item in result.skipped:
        print(f"catdog: skipped {escape(item.path)}: {escape(item.reason)}", file=sys.stderr)
    return 0


def run_export(args):
    from catdog.serving.export import export_model  # checks the options, then --out, then the model

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


def run_serve(args):
    try:
        from catdog.serving.server import serve
    except ImportError as error:
        from catdog.errors import OptionalDependencyError

        raise OptionalDependencyError(f'catdog serve needs {error.name}: pip install "catdog[serve]"') from error
    return serve(
        args.model, host=args.host, port=args.port, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
        max_upload_mb=args.max_upload_mb, read_timeout=args.read_timeout,
    )


COMMANDS = {"train": run_train, "predict": run_predict, "evaluate": run_evaluate, "export": run_export, "serve": run_serve}


def parse_args(argv=None):
    """The command line's arguments, with `train --config FILE` merged in.

    The file's values become the train command's defaults, so options given
    on the command line win; `--out` is then required from one or the other,
    and `--verbose` defaults to progress bars on a terminal and one line per
    epoch otherwise (a log file, a pipe, CI). Raises `ConfigError` for a bad
    file; argparse exits with 2 on bad options.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "train":
        return args
    train = parser.command_parsers["train"]
    if args.config:
        from catdog.training.config_file import argument_defaults, read_config_file

        train.set_defaults(**argument_defaults(read_config_file(args.config)))
        args = parser.parse_args(argv)
    if not args.out:
        train.error("the following arguments are required: --out (or an out key in --config)")
    if args.verbose is None:
        args.verbose = default_verbosity(sys.stdout)
    return args


def default_verbosity(stream):
    """Progress bars for a person at a terminal, one line per epoch for a file."""
    try:
        return 1 if stream.isatty() else 2
    except (AttributeError, ValueError):
        return 2


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from catdog import _startup_banner
    from catdog.errors import CatdogError, first_line

    _startup_banner.install()  # TensorFlow's C++ banner is noise on a command's stderr

    try:
        args = parse_args(argv)
    except CatdogError as error:
        print(f"catdog: error: {error}", file=sys.stderr)
        return EXIT_USAGE
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
        message = first_line(error)
        print(
            f"catdog: unexpected error: {type(error).__name__}: {message} "
            "(set CATDOG_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
