"""Errors a user can fix; the CLI prints them as one line and exits with 2."""


class CatdogError(Exception):
    """Base class for problems with the user's input, data, or environment.

    Catch it to handle every problem a user can fix; the `catdog` command
    prints one as a single line and exits with status 2, no traceback.
    """


class DataError(CatdogError):
    """The data cannot be used (missing, empty, one class only, unreadable)."""


class WeightsUnavailableError(CatdogError):
    """Pre-trained weights are neither cached nor downloadable."""


class ModelFileError(CatdogError):
    """A `.keras` file is missing, corrupt, or not a catdog model."""


class ConfigError(CatdogError, ValueError):
    """An argument is out of range or names something that does not exist.

    `field` names the setting at fault (a `TrainConfig` field), so the
    command line can name its own option for it.
    """

    def __init__(self, message="", field=None):
        super().__init__(message)
        self.field = field


class OptionalDependencyError(CatdogError):
    """A feature needs an optional package (an extra) that is not installed."""


class OutputError(CatdogError, OSError):
    """An output path cannot be written (read-only, full disk, not a folder).

    Also an `OSError`, so code that catches those keeps working.
    """


class ExportError(CatdogError):
    """The model could not be exported as asked."""


class TrainingDiverged(CatdogError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def first_line(error, limit=300):
    """The first line of an error's message, at most `limit` characters.

    What a one-line report shows of a library's multi-line exception; the
    exception's type name stands in for an empty message.
    """
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:limit]


def os_reason(error):
    """A short reason for an OSError, without the path it names ("permission denied")."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror[0].lower() + error.strerror[1:]
    return first_line(error, 200)
