"""The project's exception hierarchy.

Every error we raise on purpose derives from MfsError, so the CLI can turn it into one clear line
and a non-zero exit, and flows can let it propagate (a run with an error must end Failed).
"""


def first_line(error: object, fallback: str | None = None) -> str:
    """The first line of ``error``'s message (an exception or its text), stripped. When it has
    none: ``fallback``, by default an exception's type name (a text's: ""). A one-line report
    needs it: a YAML, Arrow or server error's message runs over several lines, and some
    exceptions have none at all."""
    text = str(error).strip() if error is not None else ""
    if text:
        return text.splitlines()[0].strip()
    if fallback is not None:
        return fallback
    return type(error).__name__ if isinstance(error, BaseException) else ""


class MfsError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(MfsError):
    """Invalid configuration: names the key and the offending value."""

    exit_code = 2


class InputError(MfsError):
    """A bad argument, wherever it is detected (CLI, config, flow parameter, library call): one line
    naming the argument and the value. The checks live in ``mfs.market``."""

    exit_code = 2


class IntervalError(InputError):
    """Not one of the bar intervals (``mfs.market.INTERVALS``)."""


class SymbolError(InputError):
    """Not a ticker Yahoo could serve, or an empty list of them."""


class DateError(InputError):
    """Not a date or timestamp."""


class SourceError(MfsError):
    """A market-data source failed (HTTP, rate limit, unknown symbol, malformed payload)."""


class RateLimitedError(SourceError):
    """The source keeps answering 429 after the bounded number of attempts."""


class SymbolNotFoundError(SourceError):
    """The source says the symbol does not exist or has no data (delisted)."""


class ValidationError(MfsError):
    """Input data failed validation (bars, parameters)."""


class StorageError(MfsError):
    """The database is unreachable, misconfigured, or a write failed."""


class FeatureError(MfsError):
    """Feature computation failed for one or more symbols."""


class RunFailedError(MfsError):
    """A pipeline run finished with failed symbols beyond the configured tolerance."""
