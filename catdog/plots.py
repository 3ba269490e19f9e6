"""Training curves of both stages, with the switch marked."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from catdog.artifacts import replace_atomically  # noqa: E402


def plot_training_curves(epochs, path, switch_epoch=None, title="catdog training"):
    """Accuracy and loss per epoch (train and validation) to a PNG file.

    `epochs` are history records (dicts with `epoch` and metric keys).
    """
    numbers = [record["epoch"] + 1 for record in epochs]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for axis, metric, label in (
        (axes[0], "accuracy", "Accuracy"),
        (axes[1], "loss", "Loss (binary cross-entropy)"),
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
    replace_atomically(path, lambda temporary: figure.savefig(temporary, dpi=110, format="png"))
    plt.close(figure)
