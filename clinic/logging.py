"""Logs that never carry protected health information.

Requests are logged by path, and paths name records only by opaque ids. What could carry
a patient's data is the text of an exception: PostgreSQL's messages quote the values of
the row that broke a constraint ("Key (mrn)=(...) already exists", "Failing row contains
(...)"), and a ValidationError repeats what was typed. So tracebacks are written with
their frames (file, line, function: enough to find the bug) and each exception's type,
but never its message, and Celery's "raised unexpected" lines name the exception's type
only.
"""

from __future__ import annotations

import logging
import traceback

WITHHELD = "[message withheld: it may contain patient data]"


def _describe(error: BaseException) -> str:
    kind = type(error)
    return f"{kind.__module__}.{kind.__qualname__}: {WITHHELD}"


class RedactingFormatter(logging.Formatter):
    """The standard format, with exception messages left out of tracebacks."""

    def formatException(self, exc_info) -> str:
        chain: list[BaseException] = []
        error = exc_info[1]
        while error is not None and error not in chain:
            chain.append(error)
            error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
        parts = [
            "Traceback (most recent call last):\n"
            + "".join(traceback.format_tb(error.__traceback__))
            + _describe(error)
            for error in reversed(chain)
        ]
        return "\n\nThe above exception led to the following one:\n\n".join(parts)


class RedactExceptionArguments(logging.Filter):
    """Celery's task-failure line interpolates ``repr(exception)``: keep the type only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict) and isinstance(record.args.get("exc"), str | BaseException):
            exc = record.args["exc"]
            record.args = {**record.args, "exc": _describe(exc) if isinstance(exc, BaseException) else WITHHELD}
        return True
