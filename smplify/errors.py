"""Errors every layer shares: an unusable input file, and how any error is told in one line."""
from __future__ import annotations


class InputError(ValueError):
    """An input the fitter cannot use (a file, a folder, a dataset): one line that names it."""


def one_line(exc: BaseException) -> str:
    """An exception as one line for the user: its message's first line, else its class name."""
    msg = str(exc).strip()
    return msg.splitlines()[0] if msg else exc.__class__.__name__
