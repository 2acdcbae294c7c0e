"""What every command line of the product shares: Fire dispatch, one-line errors, refusal of misuse.

Fire is kept for what it does well (commands and flags from signatures, help from docstrings),
with three fixes around it, all here: values of ``str`` parameters reach the command as typed
(Fire would read a folder named ``2024`` as a number), ``--`` ends the options and ``-`` is a
name (Fire takes them as its own), and ``--help`` and ``--version`` are answered on stdout before
Fire runs (Fire pages its help to stderr after a note).
"""

import inspect
import os
import re
import sys
import typing
from collections.abc import Callable
from typing import Any

import fire
import fire.helptext
import fire.trace

from digits_core.errors import ConfigError, DigitsError, UsageError


def run_fire(component: Any, name: str, argv: list[str] | None = None) -> int:
    """Run a Fire command line and turn :class:`DigitsError` into one line on stderr.

    Returns the process exit code: 0 on success (``--help`` and ``--version`` included), the
    error's ``exit_code`` (1 for a bad input or artifact, 2 for a usage error), Fire's own code
    for its usage errors, 130 on Ctrl-C and 141 when the reader of standard output went away
    (``| head -1``), as a Unix tool would. User mistakes never show a traceback; a bug still does.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    stdout = sys.stdout
    sys.stdout = _GuardedOutput(stdout)
    try:
        asked = _asked(component, argv, name)
        if asked is not None:  # answered here: Fire would page its help to stderr, with a note
            print(asked)
            return 0
        fire.Fire(component, command=_fire_argv(component, argv, name), name=name)
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
_HELP = ("--help", "-h")
_VERSION = "--version"


def _dispatch(component: Any, argv: list[str], name: str) -> tuple[Callable[..., Any] | None, list[str], str]:
    """The command that ``argv`` calls, its arguments and its name (``digits predict``).

    A ``--help`` or ``--version`` first, where a command is expected, is answered for the whole
    program: its command is then None.
    """
    if not isinstance(component, dict):
        return component, argv, name
    commands = ", ".join(component)
    if argv and argv[0] in (*_HELP, _VERSION):
        return None, argv, name
    if not argv:
        raise UsageError(f"give a command: {commands} (see `{name} --help`)")
    if argv[0] not in component:
        raise UsageError(f"{name} has no command {argv[0]!r}: choose one of {commands}")
    return component[argv[0]], argv[1:], f"{name} {argv[0]}"


def _fire_argv(component: Any, argv: list[str], name: str) -> list[str]:
    """Refuse what Fire would misread, before anything runs; return the arguments to give Fire.

    Fire calls a command first and complains about arguments it could not use afterwards, so a
    mistyped flag would run the command with its defaults; a flag given without its value
    would arrive as ``True``; a missing name or an unknown command would print a page of usage.
    Refused here, each with one line: unknown commands and flags, options other than switches
    without a value, names missing or too many.

    Fire also reads every value as a Python literal (a folder named ``2024`` would be a number,
    ``1e3`` 1000.0, ``True`` a bool, ``[a]`` a list), takes ``-`` for its separator of chained
    calls, reads what follows ``--`` as flags of its own, and takes a switch's next word for its
    value. So Fire is given each value as ``--name=value``, with the value of a ``str``
    parameter written as a Python string (which Fire reads back as that very text), each
    switch as ``--name=True`` or ``--name=False``, and only the names for ``*args``
    positionally. ``--`` ends the options, as in any Unix tool: what follows are names.
    """
    command, args, name = _dispatch(component, argv, name)
    parameters = inspect.signature(command).parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return argv  # any flag is welcome: Fire reads them as they are
    takes_names = any(p.kind is p.VAR_POSITIONAL or p.default is p.empty for p in parameters.values())
    values: dict[str, str] = {}  # parameter: its value, as typed
    operands: list[str] = []
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if token == "--":
            operands += args[i:]
            break
        if not _is_flag(token):
            operands.append(token)
            continue
        spelled, has_value, value = token.partition("=")
        parameter = _parameter(parameters, spelled)
        if parameter is None:
            raise UsageError(_unknown_option(parameters, spelled, token, name))
        if has_value:
            pass
        elif _is_switch(parameter):
            negated = spelled.lstrip("-").replace("-", "_") == f"no{parameter.name}"
            # A switch takes the next word as its value (--augment False) as Fire would, except
            # in a command that takes names, where the next word is a name unless True or False.
            follows = args[i] if i < len(args) and not _is_flag(args[i]) else None
            if not negated and follows is not None and (follows in ("True", "False") or not takes_names):
                value, i = follows, i + 1
            else:
                value = str(not negated)
        elif i == len(args) or args[i].startswith("--"):
            raise UsageError(f"{spelled} needs a value: see `{name} --help`")
        else:
            value, i = args[i], i + 1
        values[parameter.name] = value
    return [*argv[: len(argv) - len(args)], *_for_fire(parameters, values, operands, name)]


def _is_flag(token: str) -> bool:
    """True for ``--name``, ``-n`` and the like; False for names, ``-`` and negative numbers."""
    return token.startswith("-") and token != "-" and not _NUMBER.match(token)


def _for_fire(parameters: Any, values: dict[str, str], operands: list[str], name: str) -> list[str]:
    """Fire's arguments for flags' ``values`` and ``operands``, given to parameters as Fire would:
    operands to the positional parameters no flag named, in order, then to ``*args``."""
    slots = [
        p
        for p in parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in values
    ]
    rest = next((p for p in parameters.values() if p.kind is p.VAR_POSITIONAL), None)
    if rest is None and len(operands) > len(slots):
        extra = operands[len(slots)]
        raise UsageError(f"{name} does not take {extra!r}: see `{name} --help`")
    missing = [p for p in slots[len(operands) :] if p.default is p.empty]
    if missing:
        raise UsageError(f"{name} needs {missing[0].name.upper()}: see `{name} --help`")
    values |= {p.name: value for p, value in zip(slots, operands, strict=False)}
    flags = [f"--{key}={_as_written(parameters[key], value)}" for key, value in values.items()]
    return flags + [_as_written(rest, value) for value in operands[len(slots) :]]


def _as_written(parameter: inspect.Parameter, value: str) -> str:
    """``value`` as Fire must get it: for a ``str`` parameter, a Python string that Fire's literal
    parser reads back as ``value`` itself; for the others, the text for that parser to read."""
    return repr(value) if _is_text(parameter.annotation) else value


def _unknown_option(parameters: Any, spelled: str, token: str, name: str) -> str:
    """The message for a flag the command does not have: the options it could mean, or how to
    give a name that starts with ``-``."""
    alike = [
        f"--{p.replace('_', '-')}" for p in parameters if p.startswith(spelled[1:]) and len(spelled) == 2
    ]
    if len(alike) > 1:
        return f"{spelled} could be any of {', '.join(alike)}: spell the option out"
    if os.path.lexists(token):
        return f"{name} has no option {spelled}; to name the file {token}, put it after --: {name} -- {token}"
    return f"{name} has no option {spelled}: see `{name} --help`"


def _is_text(annotation: Any) -> bool:
    """True for ``str``, ``str | None`` and ``Optional[str]``."""
    if annotation is str:
        return True
    arguments = typing.get_args(annotation)
    return bool(arguments) and set(arguments) - {type(None)} == {str}


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


def _asked(component: Any, argv: list[str], name: str) -> str | None:
    """What to print for a ``--help`` or ``--version`` before any ``--``; None when neither is asked."""
    command, args, name = _dispatch(component, argv, name)
    options = args[: args.index("--")] if "--" in args else args
    for token in options:
        if token in _HELP:
            return _help(component if command is None else command, name)
        if token == _VERSION:
            return f"{name.split()[0]} {version_of(component)}"
    return None


def _help(command: Any, name: str) -> str:
    """Fire's help page for ``command`` (the whole program, or one of its commands)."""
    program, _, sub = name.partition(" ")
    trace = fire.trace.FireTrace(command, name=program)
    if sub:
        trace.AddAccessedProperty(command, sub, [sub], None, None)
    note = (
        "\n\nEVERY COMMAND TAKES\n    --help, -h\n        Print this page.\n    --version\n"
        f"        Print the version of {program}.\n    --\n        The end of the options: what "
        "follows is taken as names, even when it starts with -."
    )
    return fire.helptext.HelpText(command, trace=trace) + note


def version_of(component: Any) -> str:
    """The installed version of the distribution a command line belongs to (``digits_runtime``'s
    is ``digits-runtime``'s), as its package metadata gives it."""
    from importlib.metadata import version  # only here: it costs an import tens of ms

    some = next(iter(component.values())) if isinstance(component, dict) else component
    return version(some.__module__.split(".")[0].replace("_", "-"))


def main_for(component: Any, name: str) -> Callable[[], None]:
    """Build a console-script ``main`` that runs ``component`` and exits with its code."""

    def main() -> None:
        # onnxruntime, when it cannot store its telemetry device id under HOME, prints a coloured
        # warning at import, ahead of our own output; a command line has no use for it.
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        sys.exit(run_fire(component, name))

    return main
