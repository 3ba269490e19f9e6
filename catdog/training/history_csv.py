"""`history.csv`: the run's per-epoch history as a table (the same numbers as history.json)."""

import csv
import io
import os

from catdog import artifacts
from catdog.training.run_folder import HISTORY_CSV_FILE

#: The columns that come first; other metrics follow, sorted, then `seconds`.
_FIRST = ("epoch", "stage", "learning_rate", "loss", "accuracy", "val_loss", "val_accuracy")


def write_history_csv(run_dir, records):
    """One row per epoch (`epoch` counts from 0, as in history.json and TensorBoard)."""
    names = {name for record in records for name in record}
    columns = [n for n in _FIRST if n in names] + sorted(names - set(_FIRST) - {"seconds"})
    if "seconds" in names:
        columns.append("seconds")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    artifacts.write_text(os.path.join(run_dir, HISTORY_CSV_FILE), buffer.getvalue())
