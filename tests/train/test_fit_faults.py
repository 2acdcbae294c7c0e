"""Training under faults: an interrupted run, leftovers of killed runs, a full disk. The training
folder changes whole or not at all, and every failure is one line naming the file."""

import shutil

import lightning as L
import pytest
import torch

from digits_core import ownership
from digits_core.cli_support import run_fire
from digits_core.errors import DigitsError
from digits_train import cli
from digits_train.config import FitConfig
from digits_train.fit import fit

from helpers import assert_disk_full_line

pytestmark = pytest.mark.slow  # torch and Lightning take seconds to import

ONE_EPOCH = FitConfig(epochs=1, limit_train_batches=0.25, typeset=20, printed=6)
"""A quarter of one epoch, with few generated images: the faults here come before, after or
instead of training, and rendering the default 2,600 characters would be most of the time."""


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def previous_run(trained, tmp_path):
    """A copy of a finished training folder (what `make train` left), free to be damaged."""
    folder = tmp_path / "train"
    exported = (".onnx", ".onnx.lock")  # the fixture's export: not what `make train` leaves
    shutil.copytree(
        trained["dir"], folder, ignore=lambda _, names: [n for n in names if n.endswith(exported)]
    )
    return folder


def test_an_interrupted_fit_leaves_the_previous_run_as_it_was(previous_run, small_curated, monkeypatch):
    before = snapshot(previous_run)

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C during the first epoch

    monkeypatch.setattr(L.Trainer, "fit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fit(small_curated, previous_run, ONE_EPOCH)
    assert snapshot(previous_run) == before
    assert sorted(p.name for p in previous_run.parent.iterdir()) == [".train.lock", "train"]


def test_the_next_fit_removes_what_killed_runs_left(previous_run, small_curated):
    beside = previous_run.parent / ".train.x81q.tmp"  # a killed run's scratch folder
    (beside / "lightning_logs").mkdir(parents=True)
    summary = fit(small_curated, previous_run, ONE_EPOCH, threads=1)
    assert summary["epochs_run"] == 1
    assert torch.get_num_threads() == 1  # the run used the threads it was given
    assert sorted(p.name for p in previous_run.iterdir()) == [
        ownership.MARK,
        "best.ckpt",
        "config.json",
        "lightning_logs",
        "summary.json",
    ]
    assert not beside.exists()


def test_a_folder_without_a_record_is_never_replaced_on_its_names_alone(previous_run, small_curated):
    """Names prove nothing: a user's best.ckpt and summary.json look like an older version's run."""
    (previous_run / ownership.MARK).unlink()
    before = snapshot(previous_run)
    with pytest.raises(
        DigitsError, match=r"holds files `digits-train fit` did not write \(best.ckpt, config.json"
    ):
        fit(small_curated, previous_run, ONE_EPOCH)
    assert snapshot(previous_run) == before


def test_fit_never_replaces_a_folder_holding_other_files(small_curated, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DigitsError, match=r"holds files `digits-train fit` did not write \(notes.txt\)"):
        fit(small_curated, tmp_path, ONE_EPOCH)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_fit_refuses_a_projects_folder_and_leaves_its_config(capsys, small_curated, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.json").write_text('{"db": "postgres://..."}\n')  # the project's own
    argv = ["fit", "--curated-dir", small_curated, "--output-dir", project, "--epochs", "1"]
    code = run_fire(cli.COMMANDS, "digits-train", [str(a) for a in argv])
    captured = capsys.readouterr()
    assert (code, captured.out) == (1, "")
    assert captured.err == (
        f"digits-train: error: {project} holds files `digits-train fit` did not write (config.json), so it "
        "will not replace it: move them out or choose a new or empty output folder\n"
    )
    assert snapshot(project) == {"config.json": b'{"db": "postgres://..."}\n'}


def test_fit_refuses_its_own_folder_once_a_user_added_a_file(capsys, previous_run, small_curated):
    (previous_run / "notes.md").write_text("what I tried")
    before = snapshot(previous_run)
    with pytest.raises(DigitsError) as raised:
        fit(small_curated, previous_run, ONE_EPOCH)
    assert str(raised.value) == (
        f"{previous_run} holds files `digits-train fit` did not write (notes.md), so it will not replace it: "
        "move them out or choose a new or empty output folder"
    )
    assert snapshot(previous_run) == before


def test_fit_on_a_full_disk_is_one_line_and_leaves_nothing(capsys, small_curated, small_disk):
    disk = small_disk(16)
    filler = disk / "filler"
    with pytest.raises(OSError, match="No space left on device"), filler.open("wb") as fh:
        fh.write(b"\0" * 32 * 1024)  # fill the disk, as other programs do
    out = disk / "train"
    argv = ["fit", "--curated-dir", small_curated, "--output-dir", out, "--epochs", "1"]
    argv += ["--typeset", "20", "--printed", "6"]  # few generated images: the write fails before training
    code = run_fire(cli.COMMANDS, "digits-train", [str(a) for a in argv])
    captured = capsys.readouterr()
    assert code == 1
    assert_disk_full_line(captured.err, "digits-train", out)
    assert sorted(p.name for p in disk.iterdir()) == [".train.lock", "filler"]


def test_export_to_a_full_disk_is_one_line_and_leaves_nothing(capsys, trained, small_disk):
    disk = small_disk(16)
    out = disk / "model.onnx"
    argv = ["export", "--checkpoint-path", trained["dir"] / "best.ckpt", "--output", out]
    code = run_fire(cli.COMMANDS, "digits-train", [str(a) for a in argv])
    captured = capsys.readouterr()
    assert (code, captured.out) == (1, "")
    assert captured.err == (
        f"digits-train: error: cannot write {out}: No space left on device; free some space and run again\n"
    )
    assert sorted(p.name for p in disk.iterdir()) == [".model.onnx.lock"]  # the empty lock file only
