"""The package's messages and progress bars, made quiet or verbose in one place.

Library code reports through loggers under ``nasbench_xfer`` (:func:`get_logger`) and
makes its progress bars with :func:`progress_bar`.  The command line's ``-q``/``-v``
call :func:`configure`.  Used as a library, nothing is configured: messages follow the
application's own logging set-up (Python's default shows warnings and errors only) and
progress bars show, as tqdm's do.
"""
from __future__ import annotations

import logging
import sys
from typing import Any

__all__ = ["LOGGER_NAME", "get_logger", "configure", "progress_bar", "bars_enabled"]

LOGGER_NAME = "nasbench_xfer"
_state = {"bars": True}


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it per call)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def get_logger(name: str | None = None) -> logging.Logger:
    """The package's logger (``name``: a module under ``nasbench_xfer``)."""
    return logging.getLogger(name or LOGGER_NAME)


def configure(verbosity: int = 0) -> None:
    """Messages and bars for the command line: -1 quiet (errors only, no progress bars),
    0 the default (progress messages and bars), 1 verbose (debug messages too)."""
    level = logging.ERROR if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    _state["bars"] = verbosity >= 0


def bars_enabled() -> bool:
    return _state["bars"]


def progress_bar(**kwargs: Any) -> Any:
    """A tqdm bar (``kwargs`` as tqdm's), hidden when the command line asked for quiet."""
    from tqdm.auto import tqdm

    kwargs.setdefault("disable", not _state["bars"])
    return tqdm(**kwargs)
