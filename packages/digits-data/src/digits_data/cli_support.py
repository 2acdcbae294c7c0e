"""What every command line of the product shares: Fire dispatch, one-line errors, argument checks."""

import inspect
import sys
from collections.abc import Callable
from typing import Any

import fire

from digits_data.errors import DigitsError, UsageError


def run_fire(component: Any, name: str, argv: list[str] | None = None) -> int:
    """Run a Fire command line and turn :class:`DigitsError` into one line on stderr.

    Returns the process exit code: 0 on success, the error's ``exit_code`` (1 for a bad input
    or artifact, 2 for a usage error), Fire's own code for its usage errors, 130 on Ctrl-C.
    User mistakes never show a traceback; a bug still does.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        check_flags(component, argv, name)
        fire.Fire(component, command=argv, name=name)
    except fire.core.FireExit as exc:
        return int(exc.code or 0)
    except DigitsError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    return 0


def check_flags(component: Any, argv: list[str], name: str) -> None:
    """Refuse ``--flags`` that the chosen command does not take, before anything runs.

    Fire calls a command first and complains about arguments it could not use afterwards, so a
    mistyped flag would otherwise run the command with its defaults.
    """
    command = component
    if isinstance(component, dict):
        if not argv or argv[0] not in component:
            return  # Fire reports unknown or missing commands itself
        name = f"{name} {argv[0]}"
        command, argv = component[argv[0]], argv[1:]
    parameters = inspect.signature(command).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    for token in argv:
        if token == "--":
            break
        if not token.startswith("--") or token == "--help":
            continue
        flag = token[2:].split("=", 1)[0].replace("-", "_")
        if flag not in parameters and not (flag.startswith("no") and flag[2:] in parameters):
            raise UsageError(f"{name} has no option {token.split('=', 1)[0]}: see `{name} --help`")


def main_for(component: Any, name: str) -> Callable[[], None]:
    """Build a console-script ``main`` that runs ``component`` and exits with its code."""

    def main() -> None:
        sys.exit(run_fire(component, name))

    return main


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """Return ``value`` as an int within [low, high], or raise a :class:`UsageError` saying so."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"--{_flag(name)} must be a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise UsageError(f"--{_flag(name)} must be {bound}, got {value}")
    return value


def check_float(name: str, value: Any, low: float, high: float, *, open_interval: bool = True) -> float:
    """Return ``value`` as a float in (low, high) (or [low, high]), or raise a :class:`UsageError`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"--{_flag(name)} must be a number, got {value!r}")
    value = float(value)
    inside = low < value < high if open_interval else low <= value <= high
    if not inside:
        interval = f"({low}, {high})" if open_interval else f"[{low}, {high}]"
        raise UsageError(f"--{_flag(name)} must be in {interval}, got {value}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool, else raise a :class:`UsageError`."""
    if not isinstance(value, bool):
        raise UsageError(f"--{_flag(name)} must be true or false (or --no{_flag(name)}), got {value!r}")
    return value


def _flag(name: str) -> str:
    return name.replace("_", "-")
