"""One line per epoch, for logs that are files rather than terminals."""

import sys
import time

import keras

from catdog.callbacks import current_learning_rate

#: The metrics printed first, in this order; any others follow, sorted.
_FIRST = ("loss", "accuracy", "val_loss", "val_accuracy")
#: Added to the logs by FineTuneSwitch; the line shows them in its head.
_HEAD = ("stage", "learning_rate")


class EpochLogLine(keras.callbacks.Callback):
    """Prints each finished epoch as one line, with its stage and learning rate.

    Keras' progress bar redraws itself with carriage returns: under `nohup`,
    CI, a job scheduler or `> train.log` that is one line of about 100 KB per
    epoch. `fit(verbose=0)` with this callback writes instead, flushed at once:

        catdog: epoch 4/6 (stage 2, lr 1.5e-05): loss 0.0712, accuracy 0.9750,
        val_loss 0.0534, val_accuracy 0.9890; 24.1 s

    (on one line). `catdog train --verbose 2` uses it, and so does a run
    whose standard output is not a terminal.

    Args:
        total_epochs: Epochs of both stages, for "epoch N/TOTAL".
        stream: Where to write (default: `sys.stdout` at the time of writing).
    """

    def __init__(self, total_epochs, stream=None):
        super().__init__()
        self.total_epochs = int(total_epochs)
        self.stream = stream
        self._started = None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        stage = getattr(self.model, "stage", None)
        rate = current_learning_rate(getattr(self.model, "optimizer", None))
        head = f"epoch {epoch + 1}/{self.total_epochs} (" + (f"stage {stage}, " if stage is not None else "")
        names = [n for n in _FIRST if n in logs] + sorted(n for n in logs if n not in _FIRST and n not in _HEAD)
        metrics = ", ".join(f"{name} {_format(logs[name])}" for name in names)
        seconds = time.perf_counter() - self._started if self._started is not None else float("nan")
        print(f"catdog: {head}lr {rate:.3g}): {metrics}; {seconds:.1f} s", file=self.stream or sys.stdout, flush=True)

    def get_config(self):
        return {"total_epochs": self.total_epochs}


def _format(value):
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return str(value)
