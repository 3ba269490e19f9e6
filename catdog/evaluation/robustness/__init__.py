"""Robustness to distribution shift: a fixed, seeded suite of shifts and its evaluation.

`catdog evaluate MODEL --data DIR --shifts` runs it; see `suite` for the
shifts and `evaluation` for how a model is scored under them.
"""

from catdog.evaluation.robustness.evaluation import RobustnessResult, evaluate_shifts, probability_matrix
from catdog.evaluation.robustness.suite import SUITE, SUITE_VERSION, Shift, apply_shift, select

__all__ = [
    "RobustnessResult",
    "SUITE",
    "SUITE_VERSION",
    "Shift",
    "apply_shift",
    "evaluate_shifts",
    "probability_matrix",
    "select",
]
