"""How every command line reads its arguments: names as typed, numbers and switches as Fire reads
them, -- ending the options, and --help printed, in process on commands made for the test."""

import pytest

from digits_core.cli_support import run_fire

CALLS: list[tuple] = []


def copy(*names: str, into: str = "out", count: int = 1, ratio: float = 0.5, dry: bool = False) -> None:
    """Copy NAMES into a folder.

    Args:
        names: What to copy.
        into: The folder.
        count: How many times.
        ratio: A share.
        dry: Only say what would be done.
    """
    CALLS.append((names, into, count, ratio, dry))


def label(name: str, tag: str | None = None, size: int | None = None) -> None:
    """Label NAME."""
    CALLS.append((name, tag, size))


COMMANDS = {"copy": copy, "label": label}


def call(capsys, *argv: str) -> tuple[int, tuple | None, str, str]:
    CALLS.clear()
    code = run_fire(COMMANDS, "tool", list(argv))
    out, err = capsys.readouterr()
    return code, CALLS[0] if CALLS else None, out, err


@pytest.mark.parametrize(
    "text", ["2024", "1e3", "0x10", "True", "None", "[a]", "{'a': 1}", "-3", "1_000", "(1)"]
)
def test_text_parameters_get_the_text_as_typed(capsys, text):
    assert call(capsys, "copy", text, "--into", text) == (0, ((text,), text, 1, 0.5, False), "", "")
    assert call(capsys, "copy", f"--into={text}")[1] == ((), text, 1, 0.5, False)
    assert call(capsys, "label", text, "--tag", text) == (0, (text, text, None), "", "")
    assert call(capsys, "label", "--name", text)[1] == (text, None, None)


def test_other_parameters_are_read_as_literals(capsys):
    assert call(capsys, "copy", "a", "--count", "2024", "--ratio", "1e3", "--dry")[1] == (
        ("a",),
        "out",
        2024,
        1000.0,
        True,
    )
    assert call(capsys, "copy", "a", "--count=0x10", "--nodry")[1] == (("a",), "out", 16, 0.5, False)
    assert call(capsys, "label", "a", "--size", "-3")[1] == ("a", None, -3)


def test_double_dash_ends_the_options(capsys):
    argv = ["copy", "--into", "-", "--", "-rf", "--help", "--version", "--", "-", "--count"]
    assert call(capsys, *argv) == (
        0,
        (("-rf", "--help", "--version", "--", "-", "--count"), "-", 1, 0.5, False),
        "",
        "",
    )
    assert call(capsys, "label", "--", "-x")[1] == ("-x", None, None)


def test_a_lone_dash_is_a_name_not_a_separator(capsys):
    assert call(capsys, "copy", "-", "b", "-", "--into", "-")[1] == (("-", "b", "-"), "-", 1, 0.5, False)


def test_help_is_printed_on_stdout_without_running_the_command(capsys):
    for argv in (["--help"], ["-h"], ["copy", "--help"], ["copy", "a", "-h", "--count", "3"]):
        code, called, out, err = call(capsys, *argv)
        assert (code, called, err) == (0, None, "")
        assert out.startswith("NAME\n    tool")
        assert "INFO:" not in out
    assert "copy - Copy NAMES into a folder." in call(capsys, "copy", "--help")[2]
    assert "--into=INTO" in call(capsys, "copy", "--help")[2]
    code, called, out, _ = call(capsys, "copy", "--", "--help")  # after --, a name
    assert (code, called, out) == (0, (("--help",), "out", 1, 0.5, False), "")


def test_misuse_is_one_line(capsys):
    assert call(capsys, "nope", "--help") == (
        2,
        None,
        "",
        "tool: error: tool has no command 'nope': choose one of copy, label\n",
    )
    assert call(capsys, "copy", "-rf") == (
        2,
        None,
        "",
        "tool: error: tool copy has no option -rf: see `tool copy --help`\n",
    )
    assert call(capsys, "copy", "--into") == (
        2,
        None,
        "",
        "tool: error: --into needs a value: see `tool copy --help`\n",
    )


def test_a_switch_takes_true_or_false_and_in_a_command_of_names_nothing_else(capsys):
    assert call(capsys, "copy", "--dry", "a", "b")[1] == (("a", "b"), "out", 1, 0.5, True)
    assert call(capsys, "copy", "--dry", "False", "a")[1] == (("a",), "out", 1, 0.5, False)
    assert call(capsys, "copy", "--nodry", "a")[1] == (("a",), "out", 1, 0.5, False)
    assert call(capsys, "copy", "a", "--dry")[1] == (("a",), "out", 1, 0.5, True)


def test_names_missing_or_too_many_are_one_line(capsys):
    def pair(first: str, second: str, *, n: int = 1) -> None:
        """Two names."""
        CALLS.append((first, second, n))

    CALLS.clear()
    assert run_fire(pair, "pair", ["a", "--n", "2", "b"]) == 0
    assert CALLS == [("a", "b", 2)]
    assert run_fire(pair, "pair", ["a"]) == 2
    assert capsys.readouterr() == ("", "pair: error: pair needs SECOND: see `pair --help`\n")
    assert run_fire(pair, "pair", ["a", "b", "c"]) == 2
    assert capsys.readouterr() == ("", "pair: error: pair does not take 'c': see `pair --help`\n")
