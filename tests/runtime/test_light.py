"""The runtime stands on digits-core alone: importing it and `digits predict` load no digits_data module."""

import json
import subprocess
import sys

import pytest
from PIL import Image, ImageDraw

pytestmark = pytest.mark.slow  # each test starts a Python process

LOADED = "import sys; print(sorted(m for m in sys.modules if m.split('.')[0] in ('digits_data', 'torch')))"


def test_importing_the_runtime_loads_no_data_package():
    code = f"import digits_runtime, digits_runtime.cli, digits_runtime.inputs; {LOADED}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "[]\n"


def test_digits_predict_loads_no_data_package(model_path, tmp_path):
    image = tmp_path / "digit.png"
    drawing = Image.new("L", (28, 28))
    ImageDraw.Draw(drawing).ellipse((8, 4, 20, 24), outline=255, width=3)  # a 0
    drawing.save(image)
    code = (
        "from digits_core.cli_support import run_fire; from digits_runtime.cli import COMMANDS; "
        f"code = run_fire(COMMANDS, 'digits', ['predict', '--model', {str(model_path)!r}, {str(image)!r}]); "
        f"{LOADED}; sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, "")
    prediction, loaded = done.stdout.splitlines()
    assert set(json.loads(prediction)) == {"probs", "prediction", "accepted", "score"}
    assert loaded == "[]"
