"""`catdog train --config FILE`: a training configuration read from JSON or YAML.

The keys are `TrainConfig`'s fields, so a run's own `config.json` reruns it.
Every key is checked (unknown keys and wrong types are errors that name the
key); nothing here imports Keras.

Three keys are accepted but never taken from a file: `overwrite` and `resume`
(replacing or continuing a run folder is asked for on the command line, so
rerunning a run's `config.json` cannot silently clear or extend that run) and
`verbose` (how this terminal or log file shows progress). `out` is taken
from the file unless `--out` is given; a finished run there is refused as
usual.
"""

import dataclasses
import json
import os
import re
import types
import typing

from catdog.training.config import TrainConfig
from catdog.errors import ConfigError

#: Keys of a run's config.json that describe one invocation, not the run.
COMMAND_LINE_ONLY = ("overwrite", "resume", "verbose")
#: TrainConfig key -> the train command's argument (dest), where they differ.
_DESTS = {"learning_rate": "lr", "fine_tune_learning_rate": "fine_tune_lr"}
#: Keys whose option says the opposite (`augmentation: false` is `--no-augmentation`).
_NEGATED = {
    "augmentation": "no_augmentation",
    "colour_augmentation": "no_colour_augmentation",
    "feature_cache": "no_feature_cache",
}


def read_config_file(path):
    """{key: value} from a JSON or YAML file, every key known and of the right type."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"--config {path}: no such file")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"--config {path}: cannot read it ({error})") from None
    values = _parse(path, text)
    if not isinstance(values, dict):
        raise ConfigError(f"--config {path}: expected a mapping of TrainConfig keys, got {type(values).__name__}")
    hints = typing.get_type_hints(TrainConfig)
    fields = {field.name: hints[field.name] for field in dataclasses.fields(TrainConfig)}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"--config {path}: unknown key {key!r}{_suggestion(key, fields)}")
        kinds = _kinds(fields[key])
        if not any(_fits(value, kind) for kind in kinds):
            raise ConfigError(f"--config {path}: {key} must be {_describe(kinds)}, got {value!r}")
    return values


def argument_defaults(values):
    """The train command's argument defaults that `values` (from a file) set."""
    defaults = {}
    for key, value in values.items():
        if key in COMMAND_LINE_ONLY:
            continue
        if key in _NEGATED:
            defaults[_NEGATED[key]] = not value
        else:
            defaults[_DESTS.get(key, key)] = value
    return defaults


def _parse(path, text):
    if path.lower().endswith((".yaml", ".yml")):
        import yaml

        try:
            return yaml.load(text, Loader=_yaml_loader())
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise ConfigError(f"--config {path}: not valid YAML{where}: {problem}") from None
    if path.lower().endswith(".json"):
        try:
            return json.loads(text)
        except ValueError as error:
            raise ConfigError(f"--config {path}: not valid JSON: {error}") from None
    raise ConfigError(f"--config {path}: the file name must end in .json, .yaml or .yml")


def _kinds(annotation):
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return typing.get_args(annotation)
    return (annotation,)


def _fits(value, kind):
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):  # True is an int to Python, not to a config file
        return False
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def _describe(kinds):
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    return " or ".join(names.get(kind, kind.__name__) for kind in kinds)


def _suggestion(key, fields):
    import difflib

    close = difflib.get_close_matches(str(key), fields, n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(fields)})"


def _yaml_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """YAML 1.1 reads `1e-5` as a string; a learning rate written so is a number."""

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return Loader

