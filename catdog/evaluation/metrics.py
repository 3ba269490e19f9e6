"""Classification metrics from labels and predicted probabilities.

Two classes (cats vs dogs): dog is the positive class (label 1) and an
image is called a dog when P(dog) >= threshold, so a tie at the threshold
goes to the dog, as in `catdog predict`. More classes: the class of highest
probability. Per-class scores, macro-F1, top-k accuracy, the confusion matrix
and one-vs-rest AUCs come from scikit-learn. A value that is undefined (a
precision with nothing predicted, an AUC with one class only) is `None`,
never a made-up 0.
"""

import math

import numpy as np

from catdog.data.folders import CLASS_NAMES

_EPSILON = 1e-7  # Keras' clipping for binary cross-entropy


def log_loss(labels, p_dog):
    """Mean binary cross-entropy, clipped as Keras clips it."""
    labels = np.asarray(labels, np.float64).reshape(-1)
    p = np.clip(np.asarray(p_dog, np.float64).reshape(-1), _EPSILON, 1 - _EPSILON)
    if labels.size == 0:
        return float("nan")
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def predicted_labels(p_dog, threshold=0.5):
    return (np.asarray(p_dog).reshape(-1) >= threshold).astype(np.int64)


def accuracy(labels, p_dog, threshold=0.5):
    labels = np.asarray(labels).reshape(-1)
    if labels.size == 0:
        return float("nan")
    return float(np.mean(predicted_labels(p_dog, threshold) == (labels >= 0.5)))


def confusion_matrix(labels, p_dog, threshold=0.5):
    """2x2 counts: rows are the true class, columns the predicted one (cat, dog)."""
    truth = (np.asarray(labels).reshape(-1) >= 0.5).astype(np.int64)
    predicted = predicted_labels(p_dog, threshold)
    matrix = np.zeros((2, 2), np.int64)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def per_class_scores(matrix):
    """Precision, recall, F1 and support of each class from a confusion matrix."""
    matrix = np.asarray(matrix)
    scores = {}
    for index, name in enumerate(CLASS_NAMES):
        hits = int(matrix[index, index])
        predicted = int(matrix[:, index].sum())
        support = int(matrix[index, :].sum())
        misses = support - hits
        false_alarms = predicted - hits
        scores[name] = {
            "precision": _ratio(hits, predicted),
            "recall": _ratio(hits, support),
            "f1": _ratio(2 * hits, 2 * hits + false_alarms + misses),
            "support": support,
        }
    return scores


def roc_curve(labels, p_dog):
    """(false positive rates, true positive rates, thresholds), dog positive.

    One point per distinct score, from (0, 0) to (1, 1); tied scores move
    both rates at once, which is what makes the area count a tie as half.
    Rates of a class that is absent are NaN.
    """
    truth = np.asarray(labels).reshape(-1) >= 0.5
    scores = np.asarray(p_dog, np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    scores, truth = scores[order], truth[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    if scores.size == 0:
        last_of_each_score = np.zeros((0,), np.int64)
    true_positives = np.cumsum(truth)[last_of_each_score]
    false_positives = (last_of_each_score + 1) - true_positives
    positives, negatives = truth.sum(), truth.size - truth.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.r_[0.0, true_positives / positives] if positives else np.full(true_positives.size + 1, np.nan)
        fpr = np.r_[0.0, false_positives / negatives] if negatives else np.full(false_positives.size + 1, np.nan)
    thresholds = np.r_[np.inf, scores[last_of_each_score]]
    return fpr, tpr, thresholds


def roc_auc(labels, p_dog):
    """Area under the ROC curve: P(a random dog scores above a random cat).

    Ties count half. None when one class is missing: there is no pair to rank.
    """
    truth = np.asarray(labels).reshape(-1) >= 0.5
    if truth.all() or not truth.any():
        return None
    fpr, tpr, _ = roc_curve(labels, p_dog)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))



def classification_metrics(labels, p_dog, threshold=0.5, class_names=CLASS_NAMES):
    """Everything `catdog evaluate` reports for two classes, as a JSON-ready dict.

    `p_dog` is P(second class); `class_names` name the two classes.
    """
    matrix = confusion_matrix(labels, p_dog, threshold)
    loss = log_loss(labels, p_dog)
    truth = (np.asarray(labels).reshape(-1) >= 0.5).astype(np.int64)
    p = np.asarray(p_dog, np.float64).reshape(-1)
    shared = _sklearn_metrics(truth, np.stack([1.0 - p, p], axis=1), predicted_labels(p, threshold), class_names)
    per_class = per_class_scores(matrix)
    if tuple(class_names) != CLASS_NAMES:
        per_class = dict(zip(class_names, per_class.values()))
    return {
        "accuracy": _finite_or_none(accuracy(labels, p_dog, threshold)),
        "auc": roc_auc(labels, p_dog),
        "log_loss": _finite_or_none(loss),
        "loss": _finite_or_none(loss),  # the name `catdog evaluate` used first
        "threshold": float(threshold),
        "confusion_matrix": matrix.tolist(),
        "per_class": per_class,
        "n_images": int(np.asarray(labels).size),
        **shared,
    }


def multiclass_metrics(labels, probabilities, class_names):
    """Everything `catdog evaluate` reports for N > 2 classes, as a JSON-ready dict.

    Args:
        labels: True class indices, shape (n,).
        probabilities: Predicted probabilities, shape (n, N); the predicted
            class is the most probable one.
        class_names: The N class names, in label order.
    """
    from sklearn import metrics as sk

    truth = np.asarray(labels).reshape(-1).astype(np.int64)
    probabilities = np.asarray(probabilities, np.float64).reshape(truth.size, len(class_names))
    predicted = probabilities.argmax(axis=1) if truth.size else np.zeros((0,), np.int64)
    classes = np.arange(len(class_names))
    shared = _sklearn_metrics(truth, probabilities, predicted, class_names)
    precision, recall, f1, support = (
        sk.precision_recall_fscore_support(truth, predicted, labels=classes, zero_division=np.nan)
        if truth.size
        else [np.full(len(classes), np.nan)] * 3 + [np.zeros(len(classes), np.int64)]
    )
    loss = sk.log_loss(truth, probabilities, labels=classes) if truth.size else None
    defined_aucs = [value for value in shared["auc_per_class"].values() if value is not None]
    return {
        "accuracy": _finite_or_none(float(np.mean(predicted == truth))) if truth.size else None,
        # macro average of the one-vs-rest AUCs that exist
        "auc": float(np.mean(defined_aucs)) if defined_aucs else None,
        "log_loss": _finite_or_none(loss),
        "loss": _finite_or_none(loss),
        "threshold": None,  # the most probable class wins
        "confusion_matrix": (
            sk.confusion_matrix(truth, predicted, labels=classes)
            if truth.size
            else np.zeros((len(classes), len(classes)), np.int64)
        ).tolist(),
        "per_class": {
            name: {
                "precision": _finite_or_none(precision[i]),
                "recall": _finite_or_none(recall[i]),
                "f1": _finite_or_none(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "n_images": int(truth.size),
        **shared,
    }


#: Top-k accuracies reported (those with k below the number of classes).
TOP_K = (1, 3, 5)


def _sklearn_metrics(truth, probabilities, predicted, class_names):
    """Keys both the binary and the N-class report share: macro-F1, top-k, one-vs-rest AUCs."""
    from sklearn import metrics as sk

    classes = np.arange(len(class_names))
    f1 = (
        sk.f1_score(truth, predicted, labels=classes, average=None, zero_division=np.nan)
        if truth.size
        else np.full(len(classes), np.nan)
    )
    defined = f1[np.isfinite(f1)]
    top_k = {}
    for k in TOP_K:
        if k < len(classes) and truth.size:
            scores = probabilities[:, 1] if len(classes) == 2 else probabilities
            top_k[str(k)] = float(sk.top_k_accuracy_score(truth, scores, k=k, labels=classes))
    aucs = {}
    for index, name in enumerate(class_names):
        positive = truth == index
        aucs[name] = (
            float(sk.roc_auc_score(positive, probabilities[:, index]))
            if positive.any() and not positive.all()
            else None
        )
    return {
        "class_names": list(class_names),
        # mean F1 of the classes where F1 exists
        "macro_f1": float(defined.mean()) if defined.size else None,
        "top_k_accuracy": top_k,
        "auc_per_class": aucs,
    }


def _ratio(numerator, denominator):
    return float(numerator) / denominator if denominator else None


def _finite_or_none(value):
    return float(value) if value is not None and math.isfinite(value) else None
