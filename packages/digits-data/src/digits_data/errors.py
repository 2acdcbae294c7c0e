"""Errors a user can act on. The command-line entry points print them as one line."""


class DigitsError(Exception):
    """A bad input or artifact: the message says what is wrong, with which file, and what to do.

    Command-line entry points print the message on one line and exit with ``exit_code``.
    """

    exit_code = 1


class UsageError(DigitsError):
    """A command was called with arguments outside what it accepts."""

    exit_code = 2
