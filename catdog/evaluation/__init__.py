"""The evaluation wing: how good a model is, in numbers, figures and a report.

`evaluate` runs a model over labelled photos; `metrics` turns predictions
into numbers; `figures` and `report` draw and write them; `gradcam` shows
where the model looked; `robustness` measures accuracy under distribution
shift. Imports the core and `catdog.data`, never the training or serving wings.
"""
