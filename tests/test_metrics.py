"""Metrics against values worked out by hand, degenerate cases included."""

import math

import numpy as np
import pytest

from catdog.evaluation import metrics


def test_small_fixed_predictions():
    labels, p_dog = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    result = metrics.classification_metrics(labels, p_dog)
    # Predicted: cat, cat, cat, dog -> one dog missed.
    assert result["confusion_matrix"] == [[2, 0], [1, 1]]
    assert result["accuracy"] == 0.75
    # Dog/cat pairs ranked right: 0.35>0.1, 0.8>0.1, 0.8>0.4; wrong: 0.35<0.4.
    assert result["auc"] == pytest.approx(3 / 4)
    expected_loss = -(math.log(0.9) + math.log(0.6) + math.log(0.35) + math.log(0.8)) / 4
    assert result["log_loss"] == pytest.approx(expected_loss)
    assert result["loss"] == result["log_loss"]
    assert result["per_class"]["cat"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert result["per_class"]["dog"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert result["n_images"] == 4


def test_roc_curve_points():
    fpr, tpr, thresholds = metrics.roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(thresholds, [np.inf, 0.8, 0.4, 0.35, 0.1])


def test_ties_at_the_threshold_go_to_dog():
    result = metrics.classification_metrics([0, 1], [0.5, 0.5])
    assert result["confusion_matrix"] == [[0, 1], [0, 1]]
    assert result["accuracy"] == 0.5
    assert result["auc"] == 0.5  # one tied pair counts half
    cat, dog = result["per_class"]["cat"], result["per_class"]["dog"]
    assert cat == {"precision": None, "recall": 0.0, "f1": 0.0, "support": 1}
    assert dog == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert metrics.classification_metrics([1, 0], [0.3, 0.2999], threshold=0.3)["accuracy"] == 1.0


def test_all_wrong():
    result = metrics.classification_metrics([0, 0, 1, 1], [0.9, 0.8, 0.1, 0.2])
    assert result["accuracy"] == 0.0
    assert result["auc"] == 0.0
    assert result["confusion_matrix"] == [[0, 2], [2, 0]]
    for name in ("cat", "dog"):
        assert result["per_class"][name] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2}


def test_one_class_only():
    result = metrics.classification_metrics([1, 1, 1], [0.9, 0.2, 0.6])
    assert result["auc"] is None  # no cat/dog pair to rank
    assert result["confusion_matrix"] == [[0, 0], [1, 2]]
    assert result["accuracy"] == pytest.approx(2 / 3)
    assert result["per_class"]["cat"] == {"precision": 0.0, "recall": None, "f1": 0.0, "support": 0}
    assert result["per_class"]["dog"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})

    cats_right = metrics.classification_metrics([0, 0], [0.1, 0.2])
    assert cats_right["per_class"]["dog"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    assert cats_right["per_class"]["cat"]["f1"] == 1.0
    fpr, tpr, _ = metrics.roc_curve([0, 0], [0.1, 0.2])
    assert np.isnan(tpr).all() and fpr[-1] == 1.0


def test_log_loss_is_clipped_like_keras():
    assert metrics.log_loss([0], [1.0]) == pytest.approx(-math.log(1e-7), rel=1e-6)
    assert metrics.log_loss([1, 0], [1.0, 0.0]) == pytest.approx(-math.log(1 - 1e-7), rel=1e-6)


def test_no_images():
    result = metrics.classification_metrics([], [])
    assert result["n_images"] == 0
    assert result["accuracy"] is None and result["log_loss"] is None and result["auc"] is None
    assert result["confusion_matrix"] == [[0, 0], [0, 0]]


def test_auc_is_the_probability_that_a_dog_outranks_a_cat():
    rng = np.random.default_rng(3)
    for _ in range(20):
        labels = rng.integers(0, 2, 30)
        labels[:2] = [0, 1]
        p_dog = rng.integers(0, 6, 30) / 5  # many ties
        dogs, cats = p_dog[labels == 1], p_dog[labels == 0]
        pairs = (dogs[:, None] > cats[None, :]) + 0.5 * (dogs[:, None] == cats[None, :])
        assert metrics.roc_auc(labels, p_dog) == pytest.approx(pairs.mean())
