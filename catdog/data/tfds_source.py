"""Opening TFDS `cats_vs_dogs`, and saying what really went wrong when it cannot be.

`open_tfds` runs TFDS' own `tfds.load` (which prepares the data set with
TFDS' builder on first use), reading `$TFDS_DATA_DIR` when catdog is called,
not when TFDS was imported. Three different problems used to read as one
("needs internet"):

- a Python module is missing (tensorflow-datasets 4.9 reaches
  `importlib_resources` through etils while it builds the builder, before
  any download): name it and the command that installs it;
- no network, and the data set is neither prepared nor downloaded: say so
  at once. TFDS itself retries for minutes before it gives up, so when the
  archive is not in TFDS' download cache either, `check_download_possible`
  first tries to reach the download's host, for a few seconds;
- anything else: its type and first line.

Nothing here imports TensorFlow itself (TFDS does, when it needs it).
"""

import os
import socket
import urllib.error
import urllib.parse

from catdog.errors import CatdogError, ConfigError, DataError, first_line

#: Import name -> the package that provides it, where they differ.
_PACKAGES = {"yaml": "PyYAML", "PIL": "pillow", "google.protobuf": "protobuf", "tree": "dm-tree"}
#: Seconds to wait for the download host before calling the machine offline.
CONNECT_TIMEOUT = 10
_OFFLINE_ADVICE = (
    "it needs internet on first use, or an already prepared copy under $TFDS_DATA_DIR "
    f"(default {os.path.expanduser('~/tensorflow_datasets')}); offline, train on a folder "
    "instead with --data DIR"
)


def check_tfds_split(data, val_data=None, val_split=0.2):
    """Refuse a validation split that TFDS `cats_vs_dogs` would silently not use.

    Its split is always 80/20: the validation part is also what `catdog
    evaluate --data tfds:cats_vs_dogs` holds out, so another split would
    evaluate a model on photos it trained on. Cheap (no TensorFlow), so
    `TrainConfig` checks it before any work.
    """
    if val_data is not None or abs(float(val_split) - 0.2) > 1e-9:
        option = "val_data" if val_data is not None else "val_split"
        raise ConfigError(
            f"{data} is always split 80/20 (the validation part `catdog evaluate` holds out too), "
            f"so {option.replace('_', '-')} cannot be used with it; for another split, train on a folder",
            field=option,
        )


def open_tfds(name, split, **kwargs):
    """`tfds.load(name, split=split, with_info=True, **kwargs)`, or a `DataError` saying why not."""
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise describe_failure(name, error) from error
    data_dir = os.environ.get("TFDS_DATA_DIR") or None
    try:
        check_download_possible(tfds.builder(name, data_dir=data_dir))
        return tfds.load(name, split=split, with_info=True, data_dir=data_dir, **kwargs)
    except CatdogError:
        raise
    except Exception as error:  # TFDS raises many types; say which problem it is
        raise describe_failure(name, error) from error


def describe_failure(name, error):
    """A `DataError` whose message says which of the three problems `error` is."""
    missing = missing_module(error)
    if missing:
        package = _PACKAGES.get(missing, _PACKAGES.get(missing.split(".")[0], missing.split(".")[0]))
        return DataError(
            f"TFDS {name} cannot be loaded: the Python module {missing!r} is not installed; "
            f"install it with: pip install {package} (or reinstall catdog, which depends on it)"
        )
    offline = network_failure(error)
    if offline is not None:
        return DataError(f"TFDS {name} cannot be downloaded: no network ({first_line(offline)}); {_OFFLINE_ADVICE}")
    return DataError(f"TFDS {name} failed: {type(error).__name__}: {first_line(error)}")


def missing_module(error):
    """The name of the module whose import failed anywhere in `error`'s chain, or None."""
    for item in _chain(error):
        if isinstance(item, ModuleNotFoundError) and item.name:
            return item.name
    return None


def network_failure(error):
    """The exception in `error`'s chain that says the network is unreachable, or None."""
    for item in _chain(error):
        if isinstance(item, (ConnectionError, socket.gaierror, TimeoutError, urllib.error.URLError)):
            return item
        kind = type(item)
        if kind.__module__.split(".")[0] in ("requests", "urllib3") and any(
            word in kind.__name__ for word in ("Connection", "Timeout", "NameResolution", "MaxRetry")
        ):
            return item
    return None


def check_download_possible(builder):
    """Raise the no-network `DataError` now if TFDS would have to download and cannot.

    Does nothing when the data set is prepared, when TFDS' download cache
    (or its manual folder) holds something for it, or when the host answers.
    """
    if builder.is_prepared():
        return
    urls = list((builder.url_infos or {}).items())
    if not urls or _download_cached(builder, urls):
        return
    for url, _ in urls:
        host = urllib.parse.urlsplit(url).hostname
        try:
            socket.create_connection((host, 443), timeout=CONNECT_TIMEOUT).close()
        except OSError as error:
            raise DataError(
                f"TFDS {builder.name} is not prepared in {builder.data_dir_root} and cannot be downloaded: "
                f"no network (cannot reach {host}: {error.strerror or error}); {_OFFLINE_ADVICE}"
            ) from None


def _download_cached(builder, urls):
    """Whether TFDS' download folder already holds (or may hold) these downloads."""
    try:
        from tensorflow_datasets.core.download import resource

        downloads = os.path.join(os.fspath(builder.data_dir_root), "downloads")
        candidates = []
        for url, info in urls:
            for checksum in (info.checksum, None):
                fname = resource.get_dl_fname(url, checksum)
                candidates += [os.path.join(downloads, builder.name, fname), os.path.join(downloads, fname)]
            if info.filename:
                candidates.append(os.path.join(downloads, "manual", info.filename))
        return any(os.path.exists(path) for path in candidates)
    except Exception:  # TFDS' internals moved: let TFDS look for itself
        return True


def _chain(error):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__
