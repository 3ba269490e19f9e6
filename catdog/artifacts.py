"""Writing run artifacts atomically: a crash leaves the old file or the new one."""

import json
import os
import tempfile


def _temporary_beside(path, suffix=""):
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.", suffix=f".tmp{suffix}", dir=directory
    )
    os.close(handle)
    return temporary


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def replace_atomically(path, write):
    """Call `write(temporary_path)`, then move the result over `path`.

    The temporary file sits in the same folder (same file system), so the
    final `os.replace` is atomic; it is fsynced first so a power cut does not
    leave an empty file behind the new name.
    """
    suffix = os.path.splitext(path)[1]
    try:
        temporary = _temporary_beside(path, suffix)
    except OSError as error:
        raise _output_error(path, error) from error
    try:
        write(temporary)
        # mkstemp makes the file private (0600); the artifact gets the
        # permissions any other new file would get under the user's umask.
        os.chmod(temporary, 0o666 & ~_current_umask())
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        if os.path.exists(temporary):
            os.remove(temporary)
        from catdog.errors import CatdogError

        if isinstance(error, OSError) and not isinstance(error, CatdogError):
            # read-only, disk full, quota: one line for the user, not a traceback
            raise _output_error(path, error) from error
        raise


def _output_error(path, error):
    from catdog.errors import os_reason
    from catdog.errors import OutputError
    from catdog.names import escape

    return OutputError(f"cannot write {escape(path)}: {os_reason(error)}")


def write_text(path, text):
    def write(temporary):
        # a file name that is not UTF-8 must not stop a report: it shows as \udcXX
        with open(temporary, "w", encoding="utf-8", errors="backslashreplace") as handle:
            handle.write(text)

    replace_atomically(path, write)


def write_json(path, data):
    write_text(path, json.dumps(data, indent=2, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
