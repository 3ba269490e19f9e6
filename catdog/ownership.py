"""What catdog may replace or delete: only what it wrote itself.

Every folder catdog makes for its outputs (a run folder, an evaluation's
`--out`, a SavedModel export) gets a marker file, `.catdog`. catdog writes
only into a folder that is new, empty, or marked; inside a marked folder it
replaces or deletes only its own exact file names (for a run folder,
`catdog.training.run_folder.owned_name`). A folder
with other things in it and no marker is the user's: it is refused, whatever
the flags. (A run folder of a catdog from before markers: create an empty
`.catdog` file in it to let catdog use it again.)

A run folder is also locked for the whole run (`FolderLock`): the operating
system releases the lock when its process ends, so a killed run leaves no
stale lock behind.
"""

import json
import os
import re
import socket
import time

from catdog.errors import os_reason as reason
from catdog.errors import ConfigError, OutputError
from catdog.names import escape

#: The marker file of a folder catdog made.
MARKER = ".catdog"
#: The lock file of a run folder (holds who has the lock).
LOCK_FILE = ".catdog.lock"
RUN, EVALUATION, EXPORT, EXPLANATIONS = "run", "evaluation", "export", "explanations"

#: `catdog.artifacts` temporaries: ".NAME.XXXXXXXX.tmp.EXT" (mkstemp's 8 random characters).
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp(?P<suffix>\.[A-Za-z0-9]+)?")


def temporary_target(name):
    """The file name a half-written `catdog.artifacts` temporary was for, or None.

    Whether that name is one of catdog's own is the folder owner's to say
    (`catdog.training.run_folder.owned_name` for a run folder).
    """
    match = _TEMPORARY.fullmatch(name)
    if match is None:
        return None
    target = match.group("name")
    return target if (match.group("suffix") or "") == os.path.splitext(target)[1] else None


def marker_kind(folder):
    """The kind in `folder`'s marker ("run", "evaluation", "export", "" if unknown), or None."""
    path = os.path.join(folder, MARKER)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return str(json.load(handle).get("kind", ""))
    except (OSError, ValueError, AttributeError):
        return ""  # an empty marker (made by hand to adopt an old folder)


def is_catdog_folder(folder):
    return marker_kind(folder) is not None


def claim_folder(folder, kind, option="--out"):
    """Make `folder` an output folder of catdog's, or refuse it.

    What catdog's own commands do before writing anything, for scripts that
    write their outputs beside catdog's: a missing or empty folder is
    created and marked (`.catdog`); a marked one is used as it is; anything
    else is the user's and refused, so a script never overwrites a
    `model.keras` it did not write.

    Args:
        folder: The output folder.
        kind: What the folder holds, written in its marker ("run",
            "evaluation", "export", "explanations", or a script's own word).
        option: The option that named the folder, for the error message
            (default "--out").

    Returns:
        `folder`.

    Raises:
        ConfigError: `folder` is a file, or a folder holding what catdog did not write.
        OutputError: `folder` cannot be created or marked.

    Example:

    >>> import os, catdog
    >>> catdog.claim_folder("runs/recipe", "recipe")
    'runs/recipe'
    >>> catdog.claim_folder("runs/recipe", "recipe")  # marked: used again
    'runs/recipe'
    >>> os.makedirs("mine")
    >>> open("mine/model.keras", "w").close()
    >>> catdog.claim_folder("mine", "recipe")
    Traceback (most recent call last):
    ...
    catdog.errors.ConfigError: --out mine is not a folder catdog made (no .catdog marker) and holds 1 entries, e.g. model.keras: catdog never writes into or deletes from such a folder; choose a new or empty one
    """
    folder = os.fspath(folder)
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ConfigError(f"{option} {folder} exists and is not a folder")
    if os.path.isdir(folder):
        if is_catdog_folder(folder):
            return folder
        try:
            entries = sorted(os.listdir(folder))
        except OSError as error:
            raise OutputError(f"cannot use {option} {folder}: {reason(error)}") from None
        if entries:
            raise ConfigError(
                f"{option} {folder} is not a folder catdog made (no {MARKER} marker) and holds "
                f"{len(entries)} entries, e.g. {escape(entries[0])}: catdog never writes into "
                f"or deletes from such a folder; choose a new or empty one"
            )
    from catdog import artifacts

    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create {option} {folder}: {reason(error)}") from None
    artifacts.write_json(os.path.join(folder, MARKER), {"kind": kind, "made_by": "catdog"})
    return folder


class FolderLock:
    """An exclusive lock on a catdog folder, held from `acquire` to `release`.

    `flock` on `.catdog.lock`: the kernel drops it when the holder's process
    ends, however it ends, so the file a killed run leaves is not a lock.
    The file names the holder (pid, host, start time) for the error message.
    """

    def __init__(self, folder):
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, LOCK_FILE)
        self._fd = None

    def acquire(self):
        import fcntl

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise OutputError(f"cannot lock {self.folder}: {reason(error)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise ConfigError(
                f"{self.folder} is in use by another catdog run ({holder}); wait for it to "
                "end or choose another --out"
            ) from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            os.close(self._fd)  # closing the file drops the flock
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_holder(fd):
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
        return f"pid {holder['pid']} on {holder['host']} since {holder['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"
