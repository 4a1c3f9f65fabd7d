"""Progress lines. Every module logs to its own ``logging`` logger (``getLogger(__name__)``,
all under ``stakelearn``) and never prints progress itself; an application (the CLI, a Flower
app, a notebook) shows them on stderr with :func:`show_progress`, as Flower shows its own."""

from __future__ import annotations

import logging
import sys


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is logged (a redirect, pytest's capture)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def show_progress(level: int = logging.INFO) -> None:
    """Show StakeLearn's progress lines on stderr, one per line, as they are; idempotent."""
    logger = logging.getLogger("stakelearn")
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
