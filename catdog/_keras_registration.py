"""Registers catdog's Keras classes as soon as Keras is imported, without importing Keras ourselves.

Why: `import catdog` must be instant (the command line's `--help` should not
wait seconds for TensorFlow), yet `import catdog; import keras;
keras.saving.load_model("model.keras")` must find catdog's layers and model,
which Keras knows only once their modules have run (their classes are
registered with `@keras.saving.register_keras_serializable`), and Keras does
not import unknown packages while deserialising.

So `import catdog` calls `install()`: if Keras is already imported, the
registering modules are imported at once; otherwise a small `sys.meta_path`
finder waits for the top-level `keras` module. When it has finished
executing, the registering modules are imported, and the finder removes
itself. If Keras was imported from inside a catdog module that is itself
still being imported (e.g. `import catdog.training.train`), importing the model
then would meet half-initialised modules, so the finder waits until the last
catdog module being imported has finished (it sees those imports, too:
it wraps the loaders of `keras` and of `catdog.*` modules, nothing else).
"""

import importlib
import importlib.abc
import sys
import threading
import warnings

#: The modules whose import registers catdog's Keras classes, leaves first.
REGISTERING_MODULES = ("catdog.layers", "catdog.losses", "catdog.model")


def install():
    """Make sure catdog's Keras classes get registered, now or right after `import keras`."""
    if "keras" in sys.modules and getattr(sys.modules["keras"], "saving", None) is not None:
        register_now()
    elif not any(isinstance(finder, _KerasImportHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, _KerasImportHook())


def register_now():
    for name in REGISTERING_MODULES:
        importlib.import_module(name)


class _KerasImportHook(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loaders of `keras` and `catdog.*` to see their imports end."""

    def __init__(self):
        self._lock = threading.RLock()
        self._catdog_imports = 0  # catdog modules being executed right now
        self._keras_ready = False
        self._done = False
        self._searching = set()

    def find_spec(self, name, path=None, target=None):
        if self._done or not (name == "keras" or name.startswith("catdog.")) or name in self._searching:
            return None
        self._searching.add(name)
        try:
            spec = _find_with_others(self, name, path, target)
        finally:
            self._searching.discard(name)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        spec.loader = _NotifyingLoader(loader, self, is_keras=name == "keras")
        return spec

    def module_started(self, is_keras):
        if not is_keras:
            with self._lock:
                self._catdog_imports += 1

    def module_finished(self, is_keras, succeeded):
        with self._lock:
            if is_keras:
                self._keras_ready = succeeded
            else:
                self._catdog_imports -= 1
            ready = succeeded and self._keras_ready and self._catdog_imports == 0 and not self._done
            if ready:
                self._done = True
        if ready:
            self._uninstall()
            try:
                register_now()
            except Exception as error:  # never break the user's `import keras`
                warnings.warn(
                    f"catdog could not register its Keras classes ({type(error).__name__}: {error}); "
                    "loading catdog .keras files will fail until `import catdog.model` succeeds",
                    stacklevel=2,
                )

    def _uninstall(self):
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass


class _NotifyingLoader(importlib.abc.Loader):
    """Delegates to the real loader and tells the hook when the module has run."""

    def __init__(self, loader, hook, is_keras):
        self._loader, self._hook, self._is_keras = loader, hook, is_keras

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        # The module's spec should name the real loader (pickling, reloads, resources).
        module.__spec__.loader = module.__loader__ = self._loader
        self._hook.module_started(self._is_keras)
        succeeded = False
        try:
            self._loader.exec_module(module)
            succeeded = True
        finally:
            self._hook.module_finished(self._is_keras, succeeded)

    def __getattr__(self, name):  # get_resource_reader, is_package, get_code, ...
        return getattr(self._loader, name)


def _find_with_others(hook, name, path, target):
    for finder in list(sys.meta_path):
        if finder is hook or not hasattr(finder, "find_spec"):
            continue
        spec = finder.find_spec(name, path, target)
        if spec is not None:
            return spec
    return None
