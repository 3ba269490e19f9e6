"""One pass of a model over labelled data, keeping what a report needs."""

import os
from dataclasses import dataclass, field

import numpy as np

from catdog import artifacts, ownership
from catdog.data.folders import CLASS_NAMES
from catdog.data.labelled import labelled_data
from catdog.errors import DataError
from catdog.evaluation.files import METRICS_FILE, ROBUSTNESS_FIGURE_FILE
from catdog.evaluation.metrics import classification_metrics, multiclass_metrics, predicted_labels
from catdog.names import escape

#: How many confidently wrong images an evaluation keeps for its figure.
N_WRONG = 12
TTA_METHOD = "mean P(dog) of the image and its mirror image (horizontal flip)"


@dataclass
class WrongExample:
    """A misclassified image: the pixels the model saw, and its file if it had one.

    `p_dog` is P(second class) for two classes; with more, `predicted` is the
    class chosen and `probability` its probability.
    """

    image: np.ndarray
    label: int
    p_dog: float | None = None
    path: str | None = None
    class_names: tuple = CLASS_NAMES
    predicted: int | None = None
    probability: float | None = None

    @property
    def true_class(self):
        return self.class_names[int(self.label)]

    @property
    def caption(self):
        """'true cat, P(dog) 0.912' or 'true beagle, basset 0.870'."""
        if self.predicted is None:
            return f"true {self.true_class}, P({self.class_names[1]}) {self.p_dog:.3f}"
        return f"true {self.true_class}, {self.class_names[self.predicted]} {self.probability:.3f}"

    def to_dict(self):
        if self.predicted is None:
            return {"path": self.path, "true_label": self.true_class, "p_dog": round(self.p_dog, 6)}
        return {
            "path": self.path,
            "true_label": self.true_class,
            "predicted_label": self.class_names[self.predicted],
            "probability": round(self.probability, 6),
        }


@dataclass
class EvaluationResult:
    """Labels and predictions of every evaluated image, and the metrics they give.

    `evaluate` returns one; it keeps the raw predictions rather than only the
    numbers, so the report can draw its figures and the threshold's effect can
    be read off afterwards. `metrics` (a dict, as in `metrics.json`),
    `accuracy`, `auc`, `log_loss` and `confusion_matrix` are computed from
    them.

    `p_dog` holds the model's outputs: P(second class), shape (n,), for two
    classes; the (n, N) probabilities for more (`probabilities` is always
    (n, N)). With test-time augmentation `p_dog` holds the averaged
    probabilities and `p_dog_plain` those of the plain images, so the effect
    can be reported.

    Args:
        labels: True class indices, shape (n,).
        p_dog: The model's outputs, as above.
        threshold: P(second class) from which an image counts as that class
            (two classes only). Defaults to `0.5`.
        source: What was evaluated, for the report. Defaults to `""`.
        paths: The image files, in order, when the data was a folder.
            Defaults to `None`.
        skipped: Files that could not be used (with the reason). Defaults to
            an empty list.
        confidently_wrong: The misclassified images whose true class got the
            lowest probability. Defaults to an empty list.
        p_dog_plain: Outputs on the plain images under test-time
            augmentation. Defaults to `None`.
        robustness: A shift-suite result when one ran too. Defaults to
            `None`.
        class_names: The classes, in label order. Defaults to
            `("cat", "dog")`.

    Example:

    >>> import numpy as np
    >>> import catdog
    >>> result = catdog.EvaluationResult(
    ...     labels=np.array([0, 0, 1, 1]), p_dog=np.array([0.1, 0.6, 0.8, 0.9]))
    >>> result.accuracy, result.auc
    (0.75, 1.0)
    >>> result.confusion_matrix.tolist()  # rows: true cat, true dog
    [[1, 1], [0, 2]]
    >>> result.probabilities[1].tolist()  # P(cat), P(dog)
    [0.4, 0.6]
    """

    labels: np.ndarray
    p_dog: np.ndarray
    threshold: float = 0.5
    source: str = ""
    paths: list | None = None
    skipped: list = field(default_factory=list)
    confidently_wrong: list = field(default_factory=list)
    p_dog_plain: np.ndarray | None = None
    #: A `catdog.evaluation.robustness.RobustnessResult` when the shift suite ran too.
    robustness: object = None
    class_names: tuple = CLASS_NAMES

    @property
    def is_binary(self):
        return len(self.class_names) == 2

    @property
    def probabilities(self):
        from catdog.model import probability_matrix

        return probability_matrix(self.p_dog)

    def _metrics_of(self, outputs):
        if self.is_binary:
            return classification_metrics(self.labels, outputs, self.threshold, self.class_names)
        return multiclass_metrics(self.labels, outputs, self.class_names)

    def predicted(self, outputs=None):
        """Predicted class indices (of `outputs`, default `p_dog`)."""
        outputs = self.p_dog if outputs is None else outputs
        if self.is_binary:
            return predicted_labels(outputs, self.threshold)
        return np.asarray(outputs).argmax(axis=1)

    @property
    def metrics(self):
        return self._metrics_of(self.p_dog)

    @property
    def accuracy(self):
        return self.metrics["accuracy"]

    @property
    def auc(self):
        return self.metrics["auc"]

    @property
    def log_loss(self):
        return self.metrics["log_loss"]

    @property
    def confusion_matrix(self):
        return np.asarray(self.metrics["confusion_matrix"])

    @property
    def n_images(self):
        return int(self.labels.size)

    @property
    def n_skipped(self):
        return len(self.skipped)

    def tta_effect(self):
        """Metrics without and with test-time augmentation; None without it."""
        if self.p_dog_plain is None:
            return None
        keys = ("accuracy", "auc", "log_loss")
        plain = self._metrics_of(self.p_dog_plain)
        augmented = self.metrics
        changed = self.predicted() != self.predicted(self.p_dog_plain)
        return {
            "method": TTA_METHOD,
            "without": {key: plain[key] for key in keys},
            "with": {key: augmented[key] for key in keys},
            "changed_predictions": int(changed.sum()),
        }

    def to_dict(self):
        result = self.metrics
        result.update(
            {
                "n_skipped": self.n_skipped,
                "source": self.source,
                "tta": self.tta_effect(),
                "confidently_wrong": [example.to_dict() for example in self.confidently_wrong],
                "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            }
        )
        if self.robustness is not None:
            result["robustness"] = self.robustness.to_dict()
        return result


def evaluate(model, data, threshold=0.5, batch_size=32, tta=False, n_wrong=N_WRONG):
    """Evaluate `model` on labelled `data` and return an `EvaluationResult`.

    The same decoding as training and `catdog predict`, so the numbers are
    those of the photos the model would be given; unreadable files are skipped
    and listed, not fatal.

    Args:
        model: A catdog classifier or the path of its `.keras` file.
        data: A folder with a sub-folder per class of the model (`cat(s)/`
            and `dog(s)/`), `"tfds:cats_vs_dogs[:SPLIT]"`, a `tf.data.Dataset`
            of (image, label), or `(images, labels)` arrays.
        threshold: P(dog) (P of the second class) from which an image counts
            as a dog; two classes only (with more, the most probable wins).
            Defaults to `0.5`.
        batch_size: Images per prediction batch. Defaults to `32`.
        tta: Also predict on mirrored images and average (flip averaging).
            Defaults to `False`.
        n_wrong: How many of the most confidently wrong images to keep.
            Defaults to `12`.

    Raises:
        DataError: `data` holds no usable image, or not the model's classes.
        ModelFileError: `model` is a path that holds no catdog model.

    Example:

    >>> import numpy as np
    >>> import catdog
    >>> model = catdog.CatDogClassifier(image_size=32, alpha=0.35, weights=None)
    >>> images, labels = np.zeros((4, 32, 32, 3), "uint8"), np.array([0, 0, 1, 1])
    >>> result = catdog.evaluate(model, (images, labels), tta=True)
    >>> result.n_images, result.probabilities.shape
    (4, (4, 2))
    >>> result.accuracy  # four equal images get one answer: half are wrong
    0.5
    """
    if isinstance(model, (str, os.PathLike)):
        from catdog.loading import load_model

        model = load_model(os.fspath(model))
    class_names = tuple(getattr(model, "class_names", None) or CLASS_NAMES)
    data = labelled_data(data, model.image_size, batch_size, class_names=class_names)
    labels, plain, averaged = [], [], []
    wrong = _MostConfidentlyWrong(n_wrong, threshold, class_names)
    for images, batch_labels in data.dataset:
        images = np.asarray(images)
        batch_labels = np.asarray(batch_labels, np.float32).reshape(-1)
        p_dog = _predict(model, images)
        plain.append(p_dog)
        if tta:
            p_dog = (p_dog + _predict(model, images[:, :, ::-1])) / 2
            averaged.append(p_dog)
        wrong.add(images, batch_labels, p_dog, start=sum(map(len, labels)), paths=data.paths)
        labels.append(batch_labels)
    if not labels:
        raise DataError(f"no images to evaluate in {data.source}")
    plain = np.concatenate(plain)
    return EvaluationResult(
        labels=np.concatenate(labels),
        p_dog=np.concatenate(averaged) if tta else plain,
        threshold=float(threshold),
        source=data.source,
        paths=data.paths,
        skipped=list(data.skipped),
        confidently_wrong=wrong.examples(),
        p_dog_plain=plain if tta else None,
        class_names=class_names,
    )


def write_evaluation(result, out_dir, title="catdog evaluation"):
    """`metrics.json` and the evaluation figures in `out_dir`; returns the figure paths."""
    from catdog.evaluation.figures import write_evaluation_figures

    # a new, empty or catdog-made folder only: a user's metrics.json is not replaced
    ownership.claim_folder(out_dir, ownership.EVALUATION)
    artifacts.write_json(os.path.join(out_dir, METRICS_FILE), result.to_dict())
    figures = write_evaluation_figures(result, out_dir, title)
    if result.robustness is not None:
        from catdog.evaluation.robustness.figure import plot_shift_accuracy

        figures["robustness"] = plot_shift_accuracy(
            result.robustness.to_dict(), os.path.join(out_dir, ROBUSTNESS_FIGURE_FILE), title
        )
    return figures


def _predict(model, images):
    outputs = np.asarray(model.predict_on_batch(np.ascontiguousarray(images)), np.float64)
    return outputs.reshape(-1) if outputs.shape[-1] == 1 else outputs


class _MostConfidentlyWrong:
    """Keeps the `n` misclassified images whose true class got the lowest probability."""

    def __init__(self, n, threshold, class_names=CLASS_NAMES):
        self.n, self.threshold, self.class_names = n, threshold, tuple(class_names)
        self.kept = []  # (distance, index, WrongExample)

    def add(self, images, labels, p_dog, start, paths=None):
        if len(self.class_names) > 2:
            return self._add_multiclass(images, labels, p_dog, start, paths)
        misses = np.flatnonzero(predicted_labels(p_dog, self.threshold) != (labels >= 0.5))
        for i in misses:
            index = start + int(i)
            example = WrongExample(
                image=_as_uint8(images[i]),
                label=int(labels[i] >= 0.5),
                p_dog=float(p_dog[i]),
                path=paths[index] if paths is not None else None,
                class_names=self.class_names,
            )
            self.kept.append((abs(float(p_dog[i]) - float(labels[i] >= 0.5)), index, example))
        self._trim()

    def _add_multiclass(self, images, labels, probabilities, start, paths):
        truth = labels.astype(np.int64)
        predicted = probabilities.argmax(axis=1)
        for i in np.flatnonzero(predicted != truth):
            index = start + int(i)
            example = WrongExample(
                image=_as_uint8(images[i]),
                label=int(truth[i]),
                path=paths[index] if paths is not None else None,
                class_names=self.class_names,
                predicted=int(predicted[i]),
                probability=float(probabilities[i, predicted[i]]),
            )
            self.kept.append((1.0 - float(probabilities[i, truth[i]]), index, example))
        self._trim()

    def _trim(self):
        self.kept.sort(key=lambda item: (-item[0], item[1]))
        del self.kept[self.n:]

    def examples(self):
        return [example for _, _, example in self.kept]


def _as_uint8(image):
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.copy()
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def summary_lines(result):
    """The evaluation as a few lines of text for the terminal."""
    metrics = result.metrics
    names = result.class_names
    rule = (
        f"{names[1]} when P({names[1]}) >= {result.threshold:g}"
        if result.is_binary
        else f"{len(names)} classes, the most probable wins"
    )
    lines = [
        f"{result.n_images} images from {escape(result.source)} ({result.n_skipped} skipped), {rule}",
        f"accuracy {_text(metrics['accuracy'])}  ROC AUC {_text(metrics['auc'])}"
        + ("" if result.is_binary else " (one-vs-rest, macro)")
        + f"  log loss {_text(metrics['log_loss'])}",
        f"macro-F1 {_text(metrics['macro_f1'])}"
        + "".join(f"  top-{k} accuracy {_text(v)}" for k, v in metrics["top_k_accuracy"].items() if k != "1"),
    ]
    for name, scores in metrics["per_class"].items():
        lines.append(
            f"{name}: precision {_text(scores['precision'])}  recall {_text(scores['recall'])}  "
            f"F1 {_text(scores['f1'])}  ({scores['support']} images)"
        )
    if result.is_binary:
        (tn, fp), (fn, tp) = metrics["confusion_matrix"]
        a, b = names
        lines.append(f"confusion matrix: true {a} -> {tn} {a}, {fp} {b}; true {b} -> {fn} {a}, {tp} {b}")
    else:
        lines.append("confusion matrix: in --json and --out (metrics.json, confusion_matrix.png)")
    effect = result.tta_effect()
    if effect:
        changes = [
            f"{key.replace('_', ' ')} {_text(effect['without'][key])} -> {_text(effect['with'][key])}"
            + (
                f" ({effect['with'][key] - effect['without'][key]:+.4f})"
                if effect["with"][key] is not None and effect["without"][key] is not None
                else ""
            )
            for key in effect["without"]
        ]
        lines.append(
            f"test-time augmentation ({effect['method']}): {'; '.join(changes)}; "
            f"{effect['changed_predictions']} predictions changed class"
        )
    return lines


def _text(value):
    return "n/a" if value is None else f"{value:.4f}"
