"""The suite's own guard: a run in which a test changed anything under artifacts/ fails."""

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"

TOUCHING = textwrap.dedent(
    """
    from pathlib import Path

    ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


    def test_rewrites_a_file_with_the_same_bytes():
        path = ARTIFACTS / "mnist" / "train-labels"
        path.write_bytes(path.read_bytes())


    def test_creates_one():
        (ARTIFACTS / "model.onnx").write_bytes(b"onnx")


    def test_deletes_one():
        (ARTIFACTS / "curated" / "manifest.json").unlink()
    """
)

READING = textwrap.dedent(
    """
    from pathlib import Path

    ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


    def test_reads_only(tmp_path):
        (tmp_path / "copy").write_bytes((ARTIFACTS / "mnist" / "train-labels").read_bytes())
    """
)


def checkout_with(tmp_path: Path, test_source: str) -> Path:
    """A folder laid out as the repository: artifacts/ with files, tests/ with the real conftest."""
    root = tmp_path / "repo"
    (root / "artifacts" / "mnist").mkdir(parents=True)
    (root / "artifacts" / "mnist" / "train-labels").write_bytes(b"\0\0\x08\x01")
    (root / "artifacts" / "curated").mkdir()
    (root / "artifacts" / "curated" / "manifest.json").write_text("{}")
    (root / "tests").mkdir()
    shutil.copyfile(CONFTEST, root / "tests" / "conftest.py")
    (root / "tests" / "test_inner.py").write_text(test_source)
    (root / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    return root


def run_suite(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", *args], cwd=root, capture_output=True, text=True
    )


@pytest.mark.slow
@pytest.mark.parametrize("processes", ["0", "2"])
def test_a_run_that_changes_artifacts_fails_and_says_what_changed(tmp_path, processes):
    root = checkout_with(tmp_path, TOUCHING)
    done = run_suite(root, "-n", processes)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "3 passed" in done.stdout  # every test passed: the guard alone fails the run
    lines = done.stdout.splitlines()
    start = lines.index(f"tests must write only in their temporary folders, but under {root / 'artifacts'}:")
    assert lines[start + 1 : start + 4] == [
        "deleted: curated/manifest.json",
        "changed: mnist/train-labels",
        "created: model.onnx",
    ]


@pytest.mark.slow
def test_a_run_that_only_reads_artifacts_passes(tmp_path):
    root = checkout_with(tmp_path, READING)
    done = run_suite(root, "-n", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "temporary folders" not in done.stdout
