"""Evaluation figures: confusion matrix, ROC curve, the most confidently wrong images.

Each is a titled, labelled PNG meant to be read at a glance; the training
curves live in `catdog.plots`.
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from catdog.artifacts import replace_atomically  # noqa: E402
from catdog.data.folders import CLASS_NAMES  # noqa: E402
from catdog.metrics import roc_curve  # noqa: E402

#: Figure name -> file name, in the order a report shows them.
EVALUATION_FIGURES = {
    "confusion_matrix": "confusion_matrix.png",
    "roc_curve": "roc_curve.png",
    "confidently_wrong": "confidently_wrong.png",
}
_DPI = 110
_HEAT_COLOURS = "jet"


def write_evaluation_figures(result, out_dir, title="catdog evaluation"):
    """All evaluation figures of an `EvaluationResult`; returns {name: path}."""
    paths = {name: os.path.join(out_dir, filename) for name, filename in EVALUATION_FIGURES.items()}
    plot_confusion_matrix(result, paths["confusion_matrix"], title)
    plot_roc_curve(result, paths["roc_curve"], title)
    plot_confidently_wrong(result.confidently_wrong, paths["confidently_wrong"], title)
    return paths


def plot_confusion_matrix(result, path, title="catdog evaluation"):
    matrix = result.confusion_matrix
    row_totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, row_totals, out=np.zeros(matrix.shape), where=row_totals > 0)
    figure, axis = plt.subplots(figsize=(5.2, 4.6), constrained_layout=True)
    image = axis.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    for (row, column), count in np.ndenumerate(matrix):
        axis.text(
            column, row, f"{count}\n{shares[row, column]:.1%} of true {CLASS_NAMES[row]}",
            ha="center", va="center", fontsize=11,
            color="white" if shares[row, column] > 0.5 else "black",
        )
    axis.set_xticks(range(2), [f"predicted {name}" for name in CLASS_NAMES])
    axis.set_yticks(range(2), [f"true {name}" for name in CLASS_NAMES])
    axis.set_xlabel(f"prediction (dog when P(dog) >= {result.threshold:g})")
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
            f"true {example.true_class}, P(dog) {example.p_dog:.3f}" + (f"\n{name}" if name else ""),
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
    from catdog.gradcam import overlay

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
