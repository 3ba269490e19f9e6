"""`robustness.png`: accuracy under each shift, beside the clean accuracy."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from catdog.artifacts import replace_atomically  # noqa: E402

_DPI = 110


def plot_shift_accuracy(summary, path, title="catdog evaluation"):
    """One horizontal bar per shift (a colour per family), the clean accuracy
    and the mean over shifts as vertical lines; `summary` is
    `RobustnessResult.to_dict()`."""
    shifts = summary["shifts"]
    names = list(shifts)
    accuracies = [shifts[name]["accuracy"] for name in names]
    families = list(dict.fromkeys(shifts[name]["family"] for name in names))
    colours = {family: plt.get_cmap("tab20")(i % 20) for i, family in enumerate(families)}
    clean, mean = summary["clean_accuracy"], summary["mean_accuracy"]

    figure, axis = plt.subplots(figsize=(8.5, 1.6 + 0.34 * len(names)), constrained_layout=True)
    positions = range(len(names))[::-1]
    axis.barh(list(positions), accuracies, color=[colours[shifts[n]["family"]] for n in names], height=0.75)
    low = min(accuracies + [clean])
    left = max(0.0, low - max(0.05, (1.0 - low) * 0.15))
    for position, accuracy in zip(positions, accuracies):
        axis.text(accuracy, position, f" {accuracy:.1%}", va="center", ha="left", fontsize=9)
    axis.axvline(clean, color="black", linewidth=1.5, label=f"clean {clean:.1%}")
    axis.axvline(mean, color="tab:red", linestyle="--", linewidth=1.5, label=f"mean over shifts {mean:.1%}")
    axis.set_yticks(list(positions), names, fontsize=10)
    axis.set_xlim(left, 1.0 + (1.0 - left) * 0.12)
    axis.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    axis.set_xlabel("accuracy")
    axis.grid(axis="x", alpha=0.3)
    figure.legend(loc="outside lower center", ncol=2, fontsize=10, frameon=False)
    detail = f"{summary['n_images']} images, seed {summary['seed']}" + (", mirror averaging" if summary.get("tta") else "")
    axis.set_title(f"Accuracy under distribution shift ({detail})")
    figure.suptitle(title, fontsize=10, color="dimgrey")
    replace_atomically(path, lambda temporary: figure.savefig(temporary, dpi=_DPI, format="png"))
    plt.close(figure)
    return path
