"""Recording a pipeline step's wall time: the record, the exit code passed through, usage."""

import json
import subprocess
import sys

from digits_core import timing


def test_a_step_that_succeeds_is_recorded(tmp_path):
    command = [sys.executable, "-c", "print('done')"]
    assert timing.main([str(tmp_path / "timings"), "train", "--", *command]) == 0
    record = json.loads((tmp_path / "timings" / "train.json").read_text())
    assert set(record) == {"step", "command", "seconds"}
    assert (record["step"], record["command"]) == ("train", command)
    assert isinstance(record["seconds"], float)
    assert record["seconds"] == round(record["seconds"], 3)  # recorded to the millisecond


def test_a_failing_step_passes_its_exit_code_and_records_nothing(tmp_path):
    (tmp_path / "curate.json").write_text('{"seconds": 1.0}')
    command = [sys.executable, "-c", "raise SystemExit(3)"]
    assert timing.main([str(tmp_path), "curate", "--", *command]) == 3
    assert json.loads((tmp_path / "curate.json").read_text()) == {"seconds": 1.0}  # the last good run


def test_usage_as_a_process(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "digits_core.timing", str(tmp_path), "train", "echo"],
        capture_output=True,
        text=True,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "usage: python -m digits_core.timing DIR STEP -- COMMAND [ARGS...]\n"
    assert list(tmp_path.iterdir()) == []
