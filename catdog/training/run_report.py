"""The validation report at the end of a run: metrics, figures and `report.html`.

Training's use of the evaluation wing: evaluate the trained model on the
run's validation data and write the same files `catdog evaluate --out`
writes, plus the run's own curves and settings.
"""

import os

from catdog.data.labelled import LabelledData
from catdog.errors import first_line
from catdog.evaluation.evaluate import evaluate, write_evaluation
from catdog.evaluation.files import REPORT_FILE
from catdog.evaluation.report import write_report
from catdog.training.run_folder import CURVES_FILE


def write_run_report(run_dir, model, splits, config, history, switch_epoch):
    """Evaluate on the run's validation data and write metrics, figures and report.

    Called at the end of `catdog.train`; returns the `EvaluationResult`. A
    failure here is reported, not raised: the trained model is already saved.
    """
    try:
        return _write_run_report(run_dir, model, splits, config, history, switch_epoch)
    except Exception as error:
        if os.environ.get("CATDOG_DEBUG"):
            raise
        import sys

        print(
            f"catdog: warning: the model is saved, but the evaluation report failed: "
            f"{type(error).__name__}: {first_line(error)} (catdog evaluate can redo it)",
            file=sys.stderr,
        )
        return None


def _write_run_report(run_dir, model, splits, config, history, switch_epoch):
    manifest = splits.validation_manifest
    validation = LabelledData(
        splits.validation,
        source=config.val_data or f"{config.data} (validation part)",
        paths=list(manifest.paths) if manifest is not None else None,
        skipped=list(manifest.skipped) if manifest is not None else [],
    )
    result = evaluate(model, validation, batch_size=config.batch_size)
    figures = write_evaluation(result, run_dir, title=f"validation: {validation.source}")
    curves = os.path.join(run_dir, CURVES_FILE)
    if os.path.exists(curves):
        figures = {"curves": curves, **figures}
    write_report(
        os.path.join(run_dir, REPORT_FILE),
        result,
        figures,
        title=f"catdog run {os.path.basename(os.path.abspath(run_dir))}",
        config=config.to_dict(),
        data=splits.summary(),
        history=history,
        switch_epoch=switch_epoch,
    )
    if config.verbose:
        auc = result.auc
        print(
            f"catdog: validation accuracy {result.accuracy:.4f}, AUC "
            f"{'n/a' if auc is None else f'{auc:.4f}'}, log loss {result.log_loss:.4f} "
            f"on {result.n_images} images; report: {os.path.join(run_dir, REPORT_FILE)}"
        )
    return result
