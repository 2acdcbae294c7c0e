"""Checks of configuration values, shared by the configuration objects of every package.

Each returns the value when it is acceptable and otherwise raises a :class:`ConfigError` that
names the field, so the same check reads well from Python and, as ``--flag``, on a command line.
"""

import os
from collections.abc import Collection
from typing import Any

from digits_core.errors import ConfigError


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """Return ``value`` if it is a whole number within [low, high] (no upper bound if ``high`` is None)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number, got {value!r}", name)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{name} must be {bound}, got {value}", name)
    return value


def check_float(name: str, value: Any, low: float, high: float, *, open_interval: bool = True) -> float:
    """Return ``value`` as a float if it lies in (low, high), or in [low, high] when not ``open_interval``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {value!r}", name)
    value = float(value)
    inside = low < value < high if open_interval else low <= value <= high
    if not inside:
        interval = f"({low}, {high})" if open_interval else f"[{low}, {high}]"
        raise ConfigError(f"{name} must be in {interval}, got {value}", name)
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is True or False."""
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}", name)
    return value


def check_choice(name: str, value: Any, choices: Collection[str]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}", name)
    return value


def check_path(name: str, value: Any) -> str:
    """Return ``value`` as a path to write if it names one: not blank (an empty path would mean the
    current folder, and one of spaces a file named by them)."""
    if not isinstance(value, str | os.PathLike) or not str(value).strip():
        raise ConfigError(f"{name} must name a path to write, got {value!r}", name)
    return str(value)
