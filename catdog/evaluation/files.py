"""The names of the files an evaluation writes into its folder.

An evaluation writes into `catdog evaluate --out DIR` and into every run
folder (the validation report at the end of training). Declared here, once,
so the run folder's owner (`catdog.training.run_folder`) knows every file it
may replace or delete, and a new figure cannot survive `--overwrite`.
"""

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.html"
#: Figure name -> file name, in the order a report shows them.
FIGURE_FILES = {
    "confusion_matrix": "confusion_matrix.png",
    "roc_curve": "roc_curve.png",
    "confidently_wrong": "confidently_wrong.png",
}
#: Accuracy under each shift (`evaluate --shifts`).
ROBUSTNESS_FIGURE_FILE = "robustness.png"

EVALUATION_FILES = frozenset({METRICS_FILE, REPORT_FILE, ROBUSTNESS_FIGURE_FILE, *FIGURE_FILES.values()})
