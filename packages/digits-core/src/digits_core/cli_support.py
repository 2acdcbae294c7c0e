"""What every command line of the product shares: Fire dispatch, one-line errors, refusal of misuse."""

import inspect
import os
import re
import sys
from collections.abc import Callable
from typing import Any

import fire

from digits_core.errors import ConfigError, DigitsError, UsageError


def run_fire(component: Any, name: str, argv: list[str] | None = None) -> int:
    """Run a Fire command line and turn :class:`DigitsError` into one line on stderr.

    Returns the process exit code: 0 on success, the error's ``exit_code`` (1 for a bad input
    or artifact, 2 for a usage error), Fire's own code for its usage errors, 130 on Ctrl-C and
    141 when the reader of standard output went away (``| head -1``), as a Unix tool would.
    User mistakes never show a traceback; a bug still does.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    stdout = sys.stdout
    sys.stdout = _GuardedOutput(stdout)
    try:
        check_args(component, argv, name)
        fire.Fire(component, command=argv, name=name)
        sys.stdout.flush()  # a closed pipe or a full device must show up here, not at exit
    except fire.core.FireExit as exc:
        return int(exc.code or 0)
    except DigitsError as exc:
        if isinstance(exc, _OutputError):
            _discard_output(stdout)
        message = exc.with_flags() if isinstance(exc, ConfigError) else str(exc)
        print(f"{name}: error: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _discard_output(stdout)
        return 141
    finally:
        sys.stdout = stdout
    return 0


class _OutputError(DigitsError):
    """Standard output cannot be written (e.g. it is a file on a full disk)."""


class _GuardedOutput:
    """Standard output whose write errors become :class:`_OutputError`, told apart from bugs."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._guard(self._stream.write, text)

    def flush(self) -> None:
        self._guard(self._stream.flush)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    @staticmethod
    def _guard(call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise _OutputError(f"cannot write to standard output: {exc.strerror}") from None


def _discard_output(stream: Any) -> None:
    """Point ``stream``'s file descriptor at /dev/null, so the interpreter's last flush cannot fail."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (e.g. captured by a test): nothing will be flushed at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


_NUMBER = re.compile(r"-\d")


def check_args(component: Any, argv: list[str], name: str) -> None:
    """Refuse what Fire would misread, before anything runs.

    Fire calls a command first and complains about arguments it could not use afterwards, so a
    mistyped flag would run the command with its defaults; a flag given without its value
    would arrive as ``True``; an unknown command would print a page of usage. Refused here,
    each with one line: unknown commands, unknown ``--flags`` and ``-f`` flags, and options
    other than switches given without a value.
    """
    command = component
    if isinstance(component, dict):
        commands = ", ".join(component)
        if not argv:
            raise UsageError(f"give a command: {commands} (see `{name} --help`)")
        if argv[0] in ("--help", "-h", "--"):
            return
        if argv[0] not in component:
            raise UsageError(f"{name} has no command {argv[0]!r}: choose one of {commands}")
        name = f"{name} {argv[0]}"
        command, argv = component[argv[0]], argv[1:]
    parameters = inspect.signature(command).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    takes_value = False  # the previous token was an option that takes this token as its value
    for i, token in enumerate(argv):
        if takes_value:
            takes_value = False
            continue
        if token == "--":
            break
        if token in ("--help", "-h") or not token.startswith("-") or _NUMBER.match(token):
            continue
        spelled, has_value = token.split("=", 1)[0], "=" in token
        parameter = _parameter(parameters, spelled)
        if parameter is None:
            alike = [
                f"--{p.replace('_', '-')}"
                for p in parameters
                if p.startswith(spelled[1:]) and len(spelled) == 2
            ]
            if len(alike) > 1:
                raise UsageError(f"{spelled} could be any of {', '.join(alike)}: spell the option out")
            raise UsageError(f"{name} has no option {spelled}: see `{name} --help`")
        if has_value or _is_switch(parameter):
            continue
        if i + 1 == len(argv) or argv[i + 1].startswith("--"):
            raise UsageError(f"{spelled} needs a value: see `{name} --help`")
        takes_value = True


def _parameter(parameters: Any, spelled: str) -> inspect.Parameter | None:
    """The parameter a flag names, as Fire reads it: ``--name``, ``--noname``, ``-name`` or ``-n``."""
    flag = spelled.lstrip("-").replace("-", "_")
    if not spelled.startswith("--") and len(flag) == 1:
        matches = [p for p in parameters if p.startswith(flag)]
        return parameters[matches[0]] if len(matches) == 1 else None
    if flag in parameters:
        return parameters[flag]
    if flag.startswith("no") and _is_switch(parameters.get(flag[2:])):
        return parameters[flag[2:]]
    return None


def _is_switch(parameter: inspect.Parameter | None) -> bool:
    return parameter is not None and (
        parameter.annotation in (bool, bool | None) or isinstance(parameter.default, bool)
    )


def main_for(component: Any, name: str) -> Callable[[], None]:
    """Build a console-script ``main`` that runs ``component`` and exits with its code."""

    def main() -> None:
        # onnxruntime, when it cannot store its telemetry device id under HOME, prints a coloured
        # warning at import, ahead of our own output; a command line has no use for it.
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        sys.exit(run_fire(component, name))

    return main
