"""The installed commands load their modules inside a Ctrl-C guard (digits_core.launch)."""

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from digits_core import launch

COMMANDS = {
    "digits": "digits",
    "digits-data": "digits_data",
    "digits-train": "digits_train",
    "digits-report": "digits_report",
}


def run_launch(tmp_path, module_source: str) -> subprocess.CompletedProcess:
    (tmp_path / "command_module.py").write_text(module_source)
    code = "from digits_core.launch import launch; launch('digits-x', 'command_module')"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )


def test_ctrl_c_while_the_command_loads_is_one_line_and_exit_130(tmp_path):
    done = run_launch(tmp_path, "raise KeyboardInterrupt\n")
    assert (done.returncode, done.stderr, done.stdout) == (130, "digits-x: interrupted\n", "")


def test_the_loaded_module_runs_and_its_exit_code_is_kept(tmp_path):
    done = run_launch(tmp_path, "import sys\ndef main():\n    print('ran')\n    sys.exit(3)\n")
    assert (done.returncode, done.stdout, done.stderr) == (3, "ran\n", "")


def test_a_bug_while_loading_still_shows_its_traceback(tmp_path):
    done = run_launch(tmp_path, "raise ValueError('a bug')\n")
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert done.stderr.endswith("ValueError: a bug\n")


@pytest.mark.parametrize("script", sorted(COMMANDS))
def test_installed_scripts_enter_through_the_guard(script):
    found = {e.name: e.value for e in entry_points(group="console_scripts") if e.name == script}
    if not found:
        pytest.skip(f"{script} is not installed here")
    assert found[script] == f"digits_core.launch:{COMMANDS[script]}"
    assert callable(getattr(launch, COMMANDS[script]))
