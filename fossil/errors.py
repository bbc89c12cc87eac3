"""Library errors say what is wrong in library terms; commands add their flags.

An error raised by the library may name, as ``option``, the argument or setting a user can
change to fix it (``max_mb``, ``format``, ``csv_column``, ``profile``, ``root``, ``out``,
``qdrant_url``, ``collection``): the message itself speaks of that argument, never of a
command-line flag, because a library or HTTP API caller has no flags.  ``fossil.cli`` turns
``option`` into the flag of the running command that sets it and appends it to the message,
so the command-line user still reads the flag.

This module imports nothing of fossil's, so every layer may use it.
"""

from __future__ import annotations

from typing import TypeVar

E = TypeVar("E", bound=BaseException)


def naming(error: E, option: str) -> E:
    """``error`` marked with the library ``option`` that fixes it (see the module docstring)."""
    error.option = option  # type: ignore[attr-defined]
    return error


def option_of(error: BaseException) -> str | None:
    """The library option ``error`` was marked with by :func:`naming`, if any."""
    option = getattr(error, "option", None)
    return option if isinstance(option, str) else None
