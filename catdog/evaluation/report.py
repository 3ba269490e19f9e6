"""`report.html`: one self-contained page a person can open to judge a model.

Everything is inside the file (figures and example photos as base64 data
URIs, no scripts, no external styles), so it can be mailed or archived. The
evaluation's `metrics.json` is embedded verbatim as a JSON data block, so the
page's numbers are the evaluation's numbers.
"""

import base64
import datetime
import html
import io
import json
import os

import numpy as np

from catdog import artifacts



FIGURE_CAPTIONS = {
    "curves": "Training curves of both stages; the dashed line marks the switch to fine-tuning.",
    "confusion_matrix": "Confusion matrix on the evaluation images (rows: true class).",
    "roc_curve": "ROC curve with dog (the second class) as the positive class; the dot is the decision "
    "threshold. With more than two classes: each class's one-vs-rest ROC AUC.",
    "confidently_wrong": "The misclassified images the model was most sure about.",
    "robustness": "Accuracy under each shift of the robustness suite; the solid line is the clean accuracy.",
}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: left; }
th { background: #f3f3f3; } td.number { text-align: right; font-variant-numeric: tabular-nums; }
.headline { display: flex; gap: 1.5em; flex-wrap: wrap; margin: 1em 0 2em; }
.headline div { background: #f3f6fb; border-radius: 6px; padding: 0.6em 1em; }
.headline b { display: block; font-size: 1.6em; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.95em; }
.wide { overflow-x: auto; font-size: 0.8em; } .wide th, .wide td { padding: 0.15em 0.35em; }
.examples { display: flex; flex-wrap: wrap; gap: 1em; }
.examples figure { width: 220px; margin: 0; }
.examples img { width: 220px; height: 180px; object-fit: contain; background: #f3f3f3; }
"""


def write_report(path, result, figures, title="catdog evaluation", config=None, data=None, history=None, switch_epoch=None):
    """Render `report.html` for an `EvaluationResult` and its figure files."""
    artifacts.write_text(
        path, render_report(result, figures, title, config, data, history, switch_epoch)
    )
    return path


def render_report(result, figures, title="catdog evaluation", config=None, data=None, history=None, switch_epoch=None):
    metrics = result.to_dict()
    sections = [
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">Written {datetime.datetime.now().isoformat(timespec="seconds")} '
        f"by catdog. Evaluated on: {_e(result.source)}</p>",
        _headline(metrics),
    ]
    if config:
        sections.append(_section("Configuration", _key_value_table(config)))
    if data:
        sections.append(_section("Data", _data_table(data)))
    if history:
        sections.append(_section("Per-stage metrics", _stage_table(history, switch_epoch)))
    sections.append(_section("Evaluation", _evaluation_tables(metrics)))
    sections.append(
        _section("Figures", "".join(_figure(name, figure_path) for name, figure_path in figures.items()))
    )
    sections.append(_section("Confidently wrong examples", _examples(result.confidently_wrong)))
    if result.skipped:
        sections.append(_section("Skipped files", _skipped_list(result.skipped)))
    embedded = json.dumps(metrics).replace("</", "<\\/")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(sections)
        + f'\n<script type="application/json" id="metrics">{embedded}</script>\n</body></html>\n'
    )


def _headline(metrics):
    items = [
        ("accuracy", _number(metrics["accuracy"])),
        ("ROC AUC", _number(metrics["auc"])),
        ("log loss", _number(metrics["log_loss"])),
        ("images", str(metrics["n_images"])),
        ("skipped files", str(metrics["n_skipped"])),
    ]
    cells = "".join(f'<div>{_e(name)}<b data-metric="{_e(name)}">{_e(value)}</b></div>' for name, value in items)
    return f'<div class="headline">{cells}</div>'


def _evaluation_tables(metrics):
    rows = [
        ("accuracy", metrics["accuracy"]),
        ("ROC AUC", metrics["auc"]),
        ("log loss", metrics["log_loss"]),
        *(
            [("threshold (dog when P(dog) >=)", metrics["threshold"])]
            if metrics.get("threshold") is not None
            else [("decision", "the most probable class")]
        ),
        ("macro-F1", metrics.get("macro_f1")),
        *[(f"top-{k} accuracy", value) for k, value in metrics.get("top_k_accuracy", {}).items() if k != "1"],
        ("images", metrics["n_images"]),
        ("skipped files", metrics["n_skipped"]),
    ]
    overall = _table(["metric", "value"], [(name, value) for name, value in rows])
    per_class = _table(
        ["class", "precision", "recall", "F1", "images"],
        [
            (name, scores["precision"], scores["recall"], scores["f1"], scores["support"])
            for name, scores in metrics["per_class"].items()
        ],
    )
    names = metrics.get("class_names") or list(metrics["per_class"])
    confusion = _table(
        [""] + [f"predicted {name}" for name in names],
        [(f"true {name}", *row) for name, row in zip(names, metrics["confusion_matrix"])],
    )
    if len(names) > 2:  # 37 classes: a one-vs-rest AUC column, a scrolling matrix
        per_class = _table(
            ["class", "precision", "recall", "F1", "ROC AUC (one vs rest)", "images"],
            [
                (name, s["precision"], s["recall"], s["f1"], metrics["auc_per_class"].get(name), s["support"])
                for name, s in metrics["per_class"].items()
            ],
        )
        confusion = f'<div class="wide">{confusion}</div>'

    parts = [overall, "<h3>Per class</h3>", per_class, "<h3>Confusion matrix</h3>", confusion]
    tta = metrics.get("tta")
    if tta:
        parts += [
            f"<h3>Test-time augmentation: {_e(tta['method'])}</h3>",
            _table(
                ["metric", "without", "with", "change"],
                [
                    (key, tta["without"][key], tta["with"][key], _change(tta["without"][key], tta["with"][key]))
                    for key in tta["without"]
                ],
            ),
            f"<p>{tta['changed_predictions']} of {metrics['n_images']} predictions changed class.</p>",
        ]
    if metrics.get("robustness"):
        parts.append(_robustness_table(metrics["robustness"]))
    return "".join(parts)


def _robustness_table(robustness):
    """The shift suite's accuracies (see `catdog.evaluation.robustness`)."""
    rows = [("clean", "the photos as they are", robustness["clean_accuracy"], 0.0)]
    rows += [
        (name, row["description"], row["accuracy"], -row["drop"]) for name, row in robustness["shifts"].items()
    ]
    rows.append(("mean over shifts", "", robustness["mean_accuracy"], -robustness["mean_drop"]))
    return (
        f"<h3>Robustness to distribution shift ({_e(robustness['suite'])}, seed {robustness['seed']}, "
        f"{robustness['n_images']} images{', mirror averaging' if robustness.get('tta') else ''})</h3>"
        + _table(["shift", "what it does", "accuracy", "change"], rows)
    )


def _stage_table(history, switch_epoch):
    rows = []
    for stage, name in ((1, "1: head only, backbone frozen"), (2, "2: fine-tuning the top of the backbone")):
        records = [r for r in history if _stage_of(r, switch_epoch) == stage]
        if not records:
            continue
        last = records[-1]
        val_accuracies = [r["val_accuracy"] for r in records if r.get("val_accuracy") is not None]
        rows.append(
            (
                name,
                f"{records[0]['epoch'] + 1}-{last['epoch'] + 1}",
                last.get("learning_rate"),
                last.get("accuracy"),
                last.get("loss"),
                last.get("val_accuracy"),
                last.get("val_loss"),
                max(val_accuracies) if val_accuracies else None,
            )
        )
    return _table(
        ["stage", "epochs", "learning rate", "accuracy", "loss", "val accuracy", "val loss", "best val accuracy"],
        rows,
    ) + "<p>Values of each stage's last epoch (training metrics are averages over the epoch, with augmentation).</p>"


def _stage_of(record, switch_epoch):
    if "stage" in record:
        return record["stage"]
    return 1 if switch_epoch is None or record["epoch"] < switch_epoch else 2


def _data_table(data):
    counts = data.get("counts", {})
    rows = [("source", data.get("source", ""))]
    for split in ("train", "validation"):
        if split in counts:
            per_class = counts.get(f"{split}_per_class")
            detail = f" ({', '.join(f'{k}: {v}' for k, v in per_class.items())})" if per_class else ""
            rows.append((f"{split} images", f"{counts[split]}{detail}"))
    rows.append(("skipped files", data.get("skipped", counts.get("skipped", 0))))
    return _table(["", ""], rows, header=False)


def _key_value_table(values):
    # Settings are shown as written (1e-05, None), not rounded like metrics.
    return _table(["", ""], [(key, json.dumps(value)) for key, value in values.items()], header=False)


def _figure(name, path):
    with open(path, "rb") as handle:
        encoded = base64.b64encode(handle.read()).decode("ascii")
    caption = FIGURE_CAPTIONS.get(name, name)
    return (
        f'<figure id="figure-{_e(name)}"><img data-figure="{_e(name)}" alt="{_e(caption)}" '
        f'src="data:image/png;base64,{encoded}"><figcaption>{_e(caption)}</figcaption></figure>'
    )


def _examples(examples):
    if not examples:
        return "<p>No image was misclassified.</p>"
    from catdog.evaluation.figures import thumbnail

    cells = []
    for example in examples:
        name = os.path.basename(example.path) if example.path else "(image without a file)"
        cells.append(
            f'<figure><img data-example alt="{_e(name)}" src="data:image/jpeg;base64,{_jpeg(thumbnail(example))}">'
            f"<figcaption>{_e(example.caption)}<br>"
            f'<span title="{_e(example.path or "")}">{_e(name)}</span></figcaption></figure>'
        )
    return f'<div class="examples">{"".join(cells)}</div>'


def _skipped_list(skipped, limit=50):
    items = "".join(f"<li>{_e(s.path)}: {_e(s.reason)}</li>" for s in skipped[:limit])
    more = f"<li>... and {len(skipped) - limit} more (see metrics.json)</li>" if len(skipped) > limit else ""
    return f"<ul>{items}{more}</ul>"


def _jpeg(pixels, side=256):
    from PIL import Image

    picture = Image.fromarray(np.asarray(pixels, np.uint8))
    picture.thumbnail((side, side))
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, format="JPEG", quality=85)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _table(columns, rows, header=True):
    head = "<tr>" + "".join(f"<th>{_e(c)}</th>" for c in columns) + "</tr>" if header else ""
    body = "".join(
        "<tr>" + "".join(_cell(value, first=i == 0) for i, value in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table>{head}{body}</table>"


def _cell(value, first=False):
    if first:
        return f"<th>{_e(value)}</th>"
    if isinstance(value, (int, float)) and not isinstance(value, bool) or value is None:
        return f'<td class="number">{_e(_number(value))}</td>'
    return f"<td>{_e(value)}</td>"


def _number(value):
    if value is None:
        return "n/a"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.4f}"


def _change(before, after):
    if before is None or after is None:
        return "n/a"
    return f"{after - before:+.4f}"


def _section(heading, body):
    return f"<section><h2>{_e(heading)}</h2>{body}</section>"


def _e(value):
    return html.escape(str(value))
