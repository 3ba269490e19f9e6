"""The public API's docstrings: Keras' layout, and examples that run.

Each name in `catdog.__all__` is documented as Keras documents its own classes
and functions: a summary, why, `Args:` naming every argument and its default,
and an `Example:` of `>>>` lines. The examples run here as doctests, each in
its own fresh temporary folder (they write their photos and models to the
current folder, as a user would) and with an empty namespace, so they show
everything they need, imported through the top-level `catdog` only: they keep
working when catdog's modules move.
"""

import doctest
import inspect
import io
import re
import tempfile

import keras
import pytest

import catdog

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

#: Public names without an `Example:` section, and why.
NO_EXAMPLE = {
    "BACKBONES": "a constant (the named backbones)",
    "DEFAULT_FINE_TUNE_AT": "a constant",
    "CatdogError": "an exception class",
    "ConfigError": "an exception class",
    "DataError": "an exception class",
    "ModelFileError": "an exception class",
    "OptionalDependencyError": "an exception class",
    "WeightsUnavailableError": "an exception class",
    "OutputError": "an exception class",
    "ExportError": "an exception class",
    "TrainingDiverged": "an exception class",
    "TrainResult": "made by train() only, whose example reads one",
}

#: Result objects that users read and do not build: `Attributes:` instead of `Args:`.
ATTRIBUTES_NOT_ARGS = {"TrainResult"}

#: Examples of what works on the TensorFlow backend only (as their docstrings say).
TENSORFLOW_ONLY = {"StageOneFeatureCache", "explain", "export_model", "load_exported"}

#: Names not checked here: another module owns their docstring for now.
NOT_CHECKED = {}

DOCUMENTED = [name for name in catdog.__all__ if name not in NOT_CHECKED]
WITH_EXAMPLES = [name for name in DOCUMENTED if name not in NO_EXAMPLE]


def public_object(name):
    return getattr(catdog, name)


def is_callable_api(obj):
    return inspect.isclass(obj) or inspect.isfunction(obj)


def doctests_of(name):
    """The doctests of a public class or function (a class's methods included)."""
    tests = doctest.DocTestFinder(exclude_empty=True).find(public_object(name), f"catdog.{name}", globs={})
    return [test for test in tests if test.examples]


def arguments(obj):
    """The documented-argument names of a signature: `x`, `*args`, `**kwargs`, and which have defaults."""
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        return {}
    names = {}
    for parameter in inspect.signature(obj).parameters.values():
        prefix = {parameter.VAR_POSITIONAL: "*", parameter.VAR_KEYWORD: "**"}.get(parameter.kind, "")
        names[prefix + parameter.name] = parameter.default is not parameter.empty
    return names


def section(docstring, title):
    """The lines of a Google-style section (`Args:`), dedented once; None without one."""
    lines = inspect.cleandoc(docstring).splitlines()
    if f"{title}:" not in lines:
        return None
    body = []
    for line in lines[lines.index(f"{title}:") + 1 :]:
        if line and not line.startswith(" "):
            break
        body.append(line[4:])
    return body


def documented_arguments(docstring, title="Args"):
    """{name: its entry's text} of the `Args:` section."""
    entries, current = {}, None
    for line in section(docstring, title) or []:
        match = re.match(r"(\*{0,2}\w+): ?(.*)", line)
        if match:
            current = match.group(1)
            entries[current] = match.group(2)
        elif current is not None:
            entries[current] += " " + line.strip()
    return entries


def test_every_public_name_is_documented_or_listed_as_not():
    assert set(NO_EXAMPLE) | set(NOT_CHECKED) <= set(catdog.__all__)
    assert TENSORFLOW_ONLY <= set(WITH_EXAMPLES)
    for name in DOCUMENTED:
        obj = public_object(name)
        if is_callable_api(obj):
            assert inspect.getdoc(obj), f"catdog.{name} has no docstring"


@pytest.mark.parametrize("name", [n for n in DOCUMENTED if is_callable_api(public_object(n))])
def test_docstring_has_keras_sections(name):
    obj = public_object(name)
    docstring = obj.__doc__ or ""
    summary = inspect.cleandoc(docstring).splitlines()[0]
    assert summary.endswith(".") and len(summary) <= 80, f"catdog.{name}: one-line summary: {summary!r}"

    expected = arguments(obj)
    title = "Attributes" if name in ATTRIBUTES_NOT_ARGS else "Args"
    documented = documented_arguments(docstring, title)
    if expected:
        assert section(docstring, title) is not None, f"catdog.{name} takes arguments but has no {title}: section"
    assert list(documented) == list(expected), (
        f"catdog.{name}: Args: lists {list(documented)}, the signature has {list(expected)}"
    )
    for argument, has_default in expected.items():
        if has_default and title == "Args":
            assert "default" in documented[argument].lower(), (
                f"catdog.{name}: Args: does not say the default of {argument!r}"
            )

    if name in NO_EXAMPLE:
        return
    assert section(docstring, "Example") is not None, f"catdog.{name} has no Example: section"
    tests = doctests_of(name)
    examples = [example for test in tests for example in test.examples]
    assert examples, f"catdog.{name}: Example: has no >>> lines"
    running = [example for example in examples if not example.options.get(doctest.SKIP)]
    assert any(example.want for example in running), f"catdog.{name}: the example shows no output it checks"
    for example in examples:
        # Through the top level only, so the example survives modules moving.
        assert not re.search(r"(from|import) catdog\.", example.source), example.source
        for attribute in re.findall(r"\bcatdog\.(\w+)", example.source):
            assert attribute in catdog.__all__, f"catdog.{name}'s example uses catdog.{attribute}: {example.source}"


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_example_runs(name, tmp_path, monkeypatch):
    if name in TENSORFLOW_ONLY and keras.backend.backend() != "tensorflow":
        pytest.skip(f"catdog.{name} needs the TensorFlow backend")
    tests = doctests_of(name)
    assert tests, f"catdog.{name} has no doctest examples"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the examples' mkdtemp() folders go too
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = io.StringIO()
    for test in tests:
        runner.run(test, out=report.write)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, report.getvalue()
