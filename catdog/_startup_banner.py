"""TensorFlow's native start-up banner, kept out of the command line's stderr.

TensorFlow 2.21 logs "oneDNN custom operations are on ..." from C++ before
absl logging is initialised, where `TF_CPP_MIN_LOG_LEVEL` does not reach,
so every `catdog` command that loads TensorFlow, and every one-line error
after that, began with four lines of it. The command line calls `install()`:
when TensorFlow is imported (lazily, only by the commands and checks that
need it: a bad option is still refused without it), its top-level module
runs with the process's stderr (file descriptor 2) pointed at a temporary
file, and every line but the banner's is passed on afterwards. The same
pattern as `catdog._keras_registration`: a `sys.meta_path` finder that only
wraps one module's loader, then removes itself.
"""

import importlib.abc
import os
import sys
import tempfile

from catdog._keras_registration import _find_with_others

#: Lines of the banner (each a substring of one line).
BANNER = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
)


def install():
    """Filter the banner out of stderr when TensorFlow is first imported."""
    if "tensorflow" not in sys.modules and not any(isinstance(f, _TensorFlowImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _TensorFlowImportHook())


def without_banner(text):
    return "".join(line for line in text.splitlines(keepends=True) if not any(b in line for b in BANNER))


class _TensorFlowImportHook(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader of the top-level `tensorflow` module.

    It leaves `sys.meta_path` when that module runs, not when it is found:
    `importlib.util.find_spec("tensorflow")` probes without importing.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        spec = _find_with_others(self, name, path, target)
        if spec is not None and hasattr(getattr(spec, "loader", None), "exec_module"):
            spec.loader = _QuietLoader(spec.loader, self)
        return spec

    def uninstall(self):
        try:
            sys.meta_path.remove(self)
        except ValueError:
            pass


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader with file descriptor 2 captured, then replays all but the banner."""

    def __init__(self, loader, hook):
        self._loader, self._hook = loader, hook

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self._loader  # the real one, for resources and reloads
        self._hook.uninstall()
        try:
            captured = tempfile.TemporaryFile()
        except OSError:  # nowhere to hold it: keep the banner
            return self._loader.exec_module(module)
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no file descriptor 2 to borrow
            captured.close()
            return self._loader.exec_module(module)
        with captured:
            os.dup2(captured.fileno(), 2)
            try:
                self._loader.exec_module(module)
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                kept = without_banner(captured.read().decode("utf-8", errors="replace"))
                if kept:
                    sys.stderr.write(kept)
                    sys.stderr.flush()

    def __getattr__(self, name):  # get_resource_reader, is_package, get_code, ...
        return getattr(self._loader, name)
