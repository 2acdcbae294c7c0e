"""Run a pipeline step and record its wall time: ``python -m digits_core.timing DIR STEP -- CMD...``.

Writes ``DIR/STEP.json`` with the command, its exit code and seconds, so that reports can show
what each step cost. The step's own exit code is passed through.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

from digits_core import atomic
from digits_core.errors import DigitsError


def main(argv: list[str] | None = None) -> int:
    """Entry point; see the module docstring for the arguments."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 4 or args[2] != "--":
        print("usage: python -m digits_core.timing DIR STEP -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    directory, step, command = Path(args[0]), args[1], args[3:]
    start = time.perf_counter()
    code = subprocess.call(command)
    seconds = time.perf_counter() - start
    if code == 0:
        record = {"step": step, "command": command, "seconds": round(seconds, 3)}
        try:
            atomic.write_text(directory / f"{step}.json", json.dumps(record, indent=2) + "\n")
        except DigitsError as exc:  # the step itself succeeded: its result stands
            print(f"timing: warning: the {step} time was not recorded: {exc}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
