"""Errors a user can act on. The command-line entry points print them as one line."""

import re


class DigitsError(Exception):
    """A bad input or artifact: the message says what is wrong, with which file, and what to do.

    Command-line entry points print the message on one line and exit with ``exit_code``.
    """

    exit_code = 1


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type's name when it has none), for a
    one-line error that wraps a library's."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class UsageError(DigitsError):
    """A command was called with arguments outside what it accepts."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration value outside what it accepts.

    The message names the fields as Python spells them (``eval_ratio``); a command line shows
    them as its flags (``--eval-ratio``), see :meth:`with_flags`.
    """

    def __init__(self, message: str, *fields: str) -> None:
        super().__init__(message)
        self.fields = fields

    def with_flags(self) -> str:
        """The message with each field's first mention spelled as its command-line flag."""
        text = str(self)
        for field in self.fields:
            flag = "--" + field.replace("_", "-")
            text = re.sub(rf"(?<![\w-]){re.escape(field)}\b", flag, text, count=1)
        return text
