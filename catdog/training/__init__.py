"""The training wing: a run of the recipe, from configuration to run folder.

`train.train` runs it; `config` and `config_file` hold and check its
settings; `run_folder` owns the run folder (its file names, states and resume
rules); `checkpoint`, `epoch_log`, `history_csv` and `tensorboard_logs` are the
callbacks that fill it; `feature_cache` and `distribute` make it fast and
spread it over devices. Imports the core, `catdog.data` and
`catdog.evaluation`; nothing here is imported by them.
"""
