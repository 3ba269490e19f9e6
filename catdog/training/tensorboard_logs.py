"""TensorBoard logs of a run: both stages on one timeline, the switch visible.

`tensorboard --logdir runs/` shows every run's `logs/`. Keras' own
`TensorBoard` callback is not used: it also logs per batch and per optimizer
step, and both counters restart, at the stage switch (a new optimizer) and
in a resumed run (a new `fit()`), folding the timeline back on itself.
"""

import glob
import os

import keras

from catdog.callbacks import current_learning_rate
from catdog.training.run_folder import LOG_SUBFOLDERS, LOGS_DIR

#: Sub-folders as Keras' TensorBoard callback names them, so the curves overlay.
TRAIN, VALIDATION = LOG_SUBFOLDERS


class StageTensorBoard(keras.callbacks.Callback):
    """Writes each epoch's metrics, stage and learning rate as TensorBoard scalars.

    The step is the epoch (from 0, as in `history.json`), so a resumed run
    continues the same curves. `logs/train/` gets `epoch_loss`,
    `epoch_accuracy`, `epoch_stage` (1, then 2 from the switch) and
    `epoch_learning_rate`; `logs/validation/` gets `epoch_loss` and
    `epoch_accuracy` of the validation data; a text note marks the first
    epoch of each stage.

    Each epoch is logged once: the callback runs after `RunCheckpoint`, so an
    epoch is logged only once its checkpoint is committed, and a resumed run
    first logs, from the history, the completed epochs its logs lack (a kill
    between the checkpoint and the log, or logs deleted).

    Args:
        run_dir: The run folder; logs go to `run_dir/logs/`.
        switch_epoch: The first stage-2 epoch, for the note.
        records: History records of the epochs completed before a resume.
    """

    def __init__(self, run_dir, switch_epoch, records=()):
        super().__init__()
        self.run_dir = run_dir
        self.switch_epoch = int(switch_epoch)
        self.records = list(records)
        self._writers = {}

    def _writer(self, name):
        if name not in self._writers:
            import tensorflow as tf

            self._writers[name] = tf.summary.create_file_writer(os.path.join(self.run_dir, LOGS_DIR, name))
        return self._writers[name]

    def on_train_begin(self, logs=None):
        if not self.records:
            return
        logged = logged_steps(os.path.join(self.run_dir, LOGS_DIR, TRAIN))
        for record in self.records:
            if record.get("epoch") not in logged and "stage" in record:
                self.write(record["epoch"], record, record["stage"], record.get("learning_rate", float("nan")))

    def on_epoch_end(self, epoch, logs=None):
        stage = int(getattr(self.model, "stage", 0) or 0)
        self.write(epoch, logs or {}, stage, current_learning_rate(getattr(self.model, "optimizer", None)))

    def write(self, epoch, logs, stage, rate):
        """Log one epoch: `logs` as Keras gives them (`val_` keys go to validation/)."""
        import tensorflow as tf

        skip = ("epoch", "seconds", "stage", "learning_rate")
        train = {k: v for k, v in logs.items() if not k.startswith("val_") and k not in skip}
        validation = {k[len("val_"):]: v for k, v in logs.items() if k.startswith("val_")}
        with self._writer(TRAIN).as_default(step=epoch):
            for name, value in train.items():
                tf.summary.scalar(f"epoch_{name}", float(value))
            tf.summary.scalar("epoch_stage", int(stage))
            tf.summary.scalar("epoch_learning_rate", float(rate))
            if epoch in (0, self.switch_epoch):
                what = "head only, backbone frozen" if stage == 1 else "fine-tuning the upper backbone"
                tf.summary.text("stage", f"epoch {epoch}: stage {stage} ({what}), learning rate {rate:.3g}")
        if validation:
            with self._writer(VALIDATION).as_default(step=epoch):
                for name, value in validation.items():
                    tf.summary.scalar(f"epoch_{name}", float(value))
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def get_config(self):
        return {"run_dir": self.run_dir, "switch_epoch": self.switch_epoch}


def logged_steps(folder, tag="epoch_loss"):
    """The steps at which the event files in `folder` hold `tag`."""
    import tensorflow as tf

    steps = set()
    for path in sorted(glob.glob(os.path.join(glob.escape(folder), "events.out.tfevents.*"))):
        try:
            for event in tf.compat.v1.train.summary_iterator(path):
                if any(value.tag == tag for value in event.summary.value):
                    steps.add(int(event.step))
        except tf.errors.DataLossError:  # the end of a file a kill cut short
            pass
    return steps
