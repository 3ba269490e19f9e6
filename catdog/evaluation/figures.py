"""Evaluation figures: confusion matrix, ROC curve, the most confidently wrong images.

Each is a titled, labelled PNG meant to be read at a glance; the training
curves of a training run are drawn here too (`plot_training_curves`).
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from catdog import ownership  # noqa: E402
from catdog.artifacts import replace_atomically  # noqa: E402
from catdog.errors import ConfigError  # noqa: E402
from catdog.data.folders import CLASS_NAMES  # noqa: E402
from catdog.evaluation.files import FIGURE_FILES  # noqa: E402
from catdog.evaluation.metrics import roc_curve  # noqa: E402

_DPI = 110
_HEAT_COLOURS = "jet"


def write_evaluation_figures(result, out_dir, title="catdog evaluation"):
    """All evaluation figures of an `EvaluationResult`; returns {name: path}."""
    paths = {name: os.path.join(out_dir, filename) for name, filename in FIGURE_FILES.items()}
    plot_confusion_matrix(result, paths["confusion_matrix"], title)
    plot_roc_curve(result, paths["roc_curve"], title)
    plot_confidently_wrong(result.confidently_wrong, paths["confidently_wrong"], title)
    return paths


def plot_confusion_matrix(result, path, title="catdog evaluation"):
    matrix = result.confusion_matrix
    names = list(getattr(result, "class_names", CLASS_NAMES))
    n = len(names)
    row_totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, row_totals, out=np.zeros(matrix.shape), where=row_totals > 0)
    # Cells, labels and fonts scale with the classes: 37 stay legible.
    side = 4.6 if n <= 3 else min(4.0 + 0.42 * n, 24.0)
    cell_font = 11 if n <= 3 else max(5, 11 - n // 5)
    figure, axis = plt.subplots(figsize=(side + 0.6, side), constrained_layout=True)
    image = axis.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for (row, column), count in np.ndenumerate(matrix):
        if n > 3 and count == 0:
            continue
        text = f"{count}\n{shares[row, column]:.1%} of true {names[row]}" if n <= 3 else str(count)
        axis.text(
            column, row, text, ha="center", va="center", fontsize=cell_font,
            color="white" if shares[row, column] > 0.5 else "black",
        )
    tick_font = 10 if n <= 10 else max(6, 10 - n // 10)
    if n <= 3:
        axis.set_xticks(range(n), [f"predicted {name}" for name in names])
        axis.set_yticks(range(n), [f"true {name}" for name in names])
    else:
        axis.set_xticks(range(n), names, rotation=90, fontsize=tick_font)
        axis.set_yticks(range(n), names, fontsize=tick_font)
    axis.set_xlabel(
        f"prediction ({names[1]} when P({names[1]}) >= {result.threshold:g})"
        if n == 2
        else "predicted class (the most probable)"
    )
    axis.set_ylabel("true class")
    accuracy = result.accuracy
    axis.set_title(
        f"Confusion matrix: {result.n_images} images"
        + ("" if accuracy is None else f", accuracy {accuracy:.1%}")
    )
    figure.colorbar(image, ax=axis, label="share of the true class", shrink=0.8)
    figure.suptitle(title, fontsize=10, color="dimgrey")
    _save(figure, path)


def plot_roc_curve(result, path, title="catdog evaluation"):
    if not getattr(result, "is_binary", True):
        return plot_one_vs_rest_auc(result, path, title)
    figure, axis = plt.subplots(figsize=(5.2, 4.8), constrained_layout=True)
    axis.plot([0, 1], [0, 1], ":", color="grey", label="chance (AUC 0.5)")
    auc = result.auc
    if auc is None:
        axis.text(0.5, 0.55, "ROC undefined:\nonly one class in the data", ha="center", fontsize=12)
    else:
        fpr, tpr, thresholds = roc_curve(result.labels, result.p_dog)
        axis.plot(fpr, tpr, "-", color="tab:blue", linewidth=2, label=f"model (AUC {auc:.4f})")
        matrix = result.confusion_matrix
        point = (matrix[0, 1] / matrix[0].sum(), matrix[1, 1] / matrix[1].sum())
        axis.plot(*point, "o", color="tab:red", label=f"threshold {result.threshold:g}")
    axis.set_xlim(-0.02, 1.02)
    axis.set_ylim(-0.02, 1.02)
    axis.set_aspect("equal")
    axis.set_xlabel("false positive rate (cats called dogs)")
    axis.set_ylabel("true positive rate (dogs called dogs)")
    axis.set_title(f"ROC curve, dog as positive ({result.n_images} images)")
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right")
    figure.suptitle(title, fontsize=10, color="dimgrey")
    _save(figure, path)


def plot_one_vs_rest_auc(result, path, title="catdog evaluation"):
    """N classes: each class's one-vs-rest ROC AUC as a bar, lowest at the top."""
    aucs = result.metrics["auc_per_class"]
    names = sorted(aucs, key=lambda name: (aucs[name] is None, -(aucs[name] or 0.0)), reverse=True)
    figure, axis = plt.subplots(figsize=(6.4, 1.6 + 0.24 * len(names)), constrained_layout=True)
    values = [aucs[name] if aucs[name] is not None else 0.0 for name in names]
    colours = ["tab:blue" if aucs[name] is not None else "lightgrey" for name in names]
    bars = axis.barh(range(len(names)), values, color=colours)
    for bar, name in zip(bars, names):
        label = "n/a (class absent)" if aucs[name] is None else f"{aucs[name]:.3f}"
        axis.text(min(bar.get_width(), 1.0) + 0.01, bar.get_y() + bar.get_height() / 2, label, va="center", fontsize=8)
    axis.set_yticks(range(len(names)), names, fontsize=8 if len(names) > 20 else 10)
    axis.set_xlim(0.0, 1.15)
    axis.axvline(0.5, linestyle=":", color="grey", label="chance (0.5)")
    axis.set_xlabel("ROC AUC of the class against all others")
    macro = result.auc
    axis.set_title(
        f"One-vs-rest ROC AUC per class ({result.n_images} images)"
        + ("" if macro is None else f"; macro {macro:.4f}")
    )
    axis.legend(loc="lower right")
    figure.suptitle(title, fontsize=10, color="dimgrey")
    _save(figure, path)


def plot_confidently_wrong(examples, path, title="catdog evaluation", columns=4):
    """A grid of wrong predictions, most confident first, with label and P(dog)."""
    if not examples:
        figure, axis = plt.subplots(figsize=(6, 2), constrained_layout=True)
        axis.axis("off")
        axis.text(0.5, 0.5, "No misclassified images", ha="center", va="center", fontsize=14)
        axis.set_title("Most confidently wrong predictions")
        _save(figure, path)
        return
    columns = min(columns, len(examples))
    rows = -(-len(examples) // columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(3.0 * columns, 3.3 * rows + 0.6), constrained_layout=True, squeeze=False
    )
    for axis in axes.flat:
        axis.axis("off")
    for axis, example in zip(axes.flat, examples):
        picture = thumbnail(example)
        axis.imshow(picture, cmap="gray" if picture.ndim == 2 else None)
        name = os.path.basename(example.path) if example.path else ""
        axis.set_title(
            example.caption + (f"\n{name}" if name else ""),
            fontsize=10,
            color="darkred",
        )
    figure.suptitle(f"{title}: the {len(examples)} most confidently wrong predictions")
    _save(figure, path)


def thumbnail(example, size=256):
    """The original photo when there is a file, else the pixels the model saw."""
    if example.path:
        from catdog.data.decode import decode_pil

        try:
            return decode_pil(example.path, size)
        except Exception:  # the file changed since: show what the model saw
            pass
    image = example.image
    return image[..., 0] if image.shape[-1] == 1 else image[..., :3]


def _save(figure, path):
    replace_atomically(path, lambda temporary: figure.savefig(temporary, dpi=_DPI, format="png"))
    plt.close(figure)


def plot_explanation(path, image, heat_map, title):
    """The photo beside its Grad-CAM overlay, with the decision as the title."""
    from catdog.evaluation.gradcam import overlay

    aspect = image.shape[0] / image.shape[1]
    figure, axes = plt.subplots(1, 2, figsize=(9, 0.9 + 4.0 * min(max(aspect, 0.5), 1.6)), constrained_layout=True)
    pixels = image[..., 0] if image.shape[-1] == 1 else image[..., :3]
    axes[0].imshow(pixels, cmap="gray" if pixels.ndim == 2 else None)
    axes[0].set_title("photo")
    axes[1].imshow(overlay(image, heat_map, colormap=_HEAT_COLOURS))
    axes[1].set_title("Grad-CAM: pixels that drove the decision")
    for axis in axes:
        axis.axis("off")
    scale = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(0.0, 1.0), _HEAT_COLOURS)
    figure.colorbar(scale, ax=axes[1], shrink=0.8, label="relative importance")
    figure.suptitle(title)
    _save(figure, path)


#: Longest side of the photo shown in an explanation figure.
EXPLANATION_SIDE = 512


def write_explanations(model, predictions, out_dir, layer=None):
    """One Grad-CAM figure per `Prediction` in `out_dir`.

    Returns ({image path: figure path}, [SkippedFile]) so one bad file does
    not stop the others.
    """
    from catdog.data.folders import SkippedFile
    from catdog.evaluation.gradcam import explain, load_pixels

    # a new, empty or catdog-made folder only: a user's NAME.gradcam.png is not replaced
    ownership.claim_folder(out_dir, ownership.EXPLANATIONS, option="--explain")
    written, failed, used = {}, [], set()
    for prediction in predictions:
        target = os.path.join(out_dir, _unique_name(prediction.path, used))
        try:
            pixels = load_pixels(prediction.path, EXPLANATION_SIDE)
            heat_map = explain(model, pixels, layer=layer)
            plot_explanation(
                target, pixels, heat_map,
                f"{os.path.basename(prediction.path)}: {prediction.label}, "
                f"P({prediction.class_names[1] if np.ndim(prediction.p_dog) == 0 else prediction.label}) "
                f"{prediction.score:.3f}",
            )
        except ConfigError:
            raise
        except Exception as error:  # a file that changed or vanished since it was predicted
            failed.append(SkippedFile(prediction.path, f"no explanation: {type(error).__name__}: {error}"[:200]))
            continue
        written[prediction.path] = target
    return written, failed


def _unique_name(path, used):
    stem = os.path.splitext(os.path.basename(path))[0] or "image"
    name, number = f"{stem}.gradcam.png", 1
    while name in used:
        number += 1
        name = f"{stem}.{number}.gradcam.png"
    used.add(name)
    return name


def plot_training_curves(epochs, path, switch_epoch=None, title="catdog training"):
    """Draw accuracy and loss per epoch, training and validation, to a PNG.

    The figure `catdog train` saves as `curves.png` in its run folder, drawn
    again from any history: `TrainResult.history`, the `epochs` of a run's
    `history.json` (whose `switch_epoch` says where fine-tuning began), or
    records of your own. A dashed line marks where fine-tuning starts, so a
    change of course in the curves there reads as the change of stage it is.
    The file is written atomically: a reader never sees half a PNG.

    Args:
        epochs: One dict per epoch, in order: `epoch` (counted from 0) and
            any of `accuracy`, `val_accuracy`, `loss` and `val_loss`.
        path: The PNG file to write (replaced if it exists).
        switch_epoch: Number of stage-one epochs: the line is drawn after
            that many. Defaults to `None`: no line.
        title: The figure's title. Defaults to `"catdog training"`.

    Example:

    >>> import os, tempfile
    >>> from PIL import Image
    >>> import catdog
    >>> history = [
    ...     {"epoch": 0, "accuracy": 0.71, "val_accuracy": 0.80, "loss": 0.58, "val_loss": 0.45},
    ...     {"epoch": 1, "accuracy": 0.84, "val_accuracy": 0.86, "loss": 0.37, "val_loss": 0.33},
    ...     {"epoch": 2, "accuracy": 0.93, "val_accuracy": 0.91, "loss": 0.19, "val_loss": 0.24},
    ... ]
    >>> path = os.path.join(tempfile.mkdtemp(), "curves.png")
    >>> catdog.plot_training_curves(history, path, switch_epoch=2)
    >>> with Image.open(path) as figure:
    ...     figure.format, figure.size
    ('PNG', (1210, 462))
    """
    numbers = [record["epoch"] + 1 for record in epochs]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for axis, metric, label in (
        (axes[0], "accuracy", "Accuracy"),
        (axes[1], "loss", "Loss"),
    ):
        for key, name, style in ((metric, "training", "o-"), (f"val_{metric}", "validation", "s-")):
            values = [record.get(key) for record in epochs]
            if any(v is not None for v in values):
                axis.plot(numbers, values, style, label=name)
        if switch_epoch is not None and 0 < switch_epoch < len(epochs) + 1:
            axis.axvline(switch_epoch + 0.5, color="grey", linestyle="--", label="fine-tuning starts")
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.set_title(label)
        axis.grid(alpha=0.3)
        axis.legend()
        axis.xaxis.get_major_locator().set_params(integer=True)
    figure.suptitle(title)
    replace_atomically(path, lambda temporary: figure.savefig(temporary, dpi=_DPI, format="png"))
    plt.close(figure)
