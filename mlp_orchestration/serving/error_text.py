"""Error texts of failed store reads and model loads, in full for the log and short for clients.

SQLAlchemy's exception text contains the failed SQL statement and its bound parameters, and
some messages contain database or registry URLs. Responses (503 bodies, ``GET
/v1/models/{model}``, ``/readyz``) get one line without the statement or parameters. Both texts
hide the password of every URL they contain.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from mlp_orchestration.errors import MlpError
from mlp_orchestration.settings import hide_secrets

FULL_ERROR_IN_LOG = "the service log has the full error"
_MAX_SUMMARY_CHARS = 300
# SQLAlchemy appends these sections to a driver's message, each on a line of its own.
_SQLALCHEMY_SECTIONS = re.compile(r"\s*(?:\[SQL: |\[parameters: |\(Background on this error at: )")


def log_text(exc: BaseException) -> str:
    """Return the whole error text for the service log, with URL passwords hidden.

    A project error's closing period is dropped, because the log line goes on after it.
    """
    if isinstance(exc, MlpError):
        return hide_passwords(exc.message.rstrip("."))
    return hide_passwords(f"{type(exc).__name__}: {exc}")


def client_summary(exc: BaseException) -> str:
    """Return one line about the error that is safe to send to API clients.

    The line is the first line of the database driver's error, or else of the error itself,
    after the class name of either (except for this project's errors). It leaves out the SQL
    statement, its parameters, URL passwords and the closing period, because the summary is
    put inside other sentences.
    """
    if isinstance(exc, MlpError):
        text = exc.message
    elif isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        text = f"{type(exc.orig).__name__}: {exc.orig}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = _SQLALCHEMY_SECTIONS.split(text, maxsplit=1)[0]
    lines = text.strip().splitlines()
    summary = hide_passwords(lines[0].strip() if lines else type(exc).__name__).rstrip(".")
    if len(summary) > _MAX_SUMMARY_CHARS:
        return summary[:_MAX_SUMMARY_CHARS] + "..."
    return summary


def hide_passwords(text: str) -> str:
    """Replace URL passwords and secret ``name=value`` values in a text with ***."""
    return hide_secrets(text)
