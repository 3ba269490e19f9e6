"""TensorFlow's native start-up banner, kept out of the command line's stderr.

TensorFlow 2.21 logs "oneDNN custom operations are on ..." from C++ before
absl logging is initialised, where `TF_CPP_MIN_LOG_LEVEL` does not reach,
so every `catdog` command, and every one-line error after the model is
opened, began with four lines of it. The command line imports TensorFlow
once, up front, with the process's stderr (file descriptor 2) pointed at a
temporary file, and passes on every line but the banner's.
"""

import os
import sys
import tempfile

#: Lines of the banner (each a substring of one line).
BANNER = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
)


def without_banner(text):
    return "".join(line for line in text.splitlines(keepends=True) if not any(b in line for b in BANNER))


def import_tensorflow_quietly():
    """Import TensorFlow with its banner filtered out of stderr.

    Every command imports it (the data pipeline is `tf.data`, whatever the
    Keras backend), so importing it first costs nothing. An import that fails
    is left for the command to meet, with its own message.
    """
    if "tensorflow" in sys.modules:
        return
    try:
        captured = tempfile.TemporaryFile()
    except OSError:  # nowhere to hold it: keep the banner
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no file descriptor 2 to borrow: keep the banner
        captured.close()
        return
    with captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except ImportError:
            pass
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = without_banner(captured.read().decode("utf-8", errors="replace"))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
