"""What `make` sees is what is there: two `make all` at once, and a curated folder changed after
curation. The real Makefile runs on a small artifacts tree in a temporary folder."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from digits_data import dataset, mnist

REPO = Path(__file__).resolve().parents[2]
# A copy of the checkout without what is generated, so that its timestamps are ours to set.
NOT_COPIED = (".git", ".venv", "artifacts", ".tox", "__pycache__", "*.egg-info", ".ruff_cache")


def make(checkout: Path, *goals: str, dry_run: bool = False) -> subprocess.Popen:
    """The Makefile in ``checkout`` on ``checkout/artifacts``; the installation counts as done."""
    art = checkout / "artifacts"
    command = [
        "make",
        "--no-print-directory",
        "-C",
        str(checkout),
        f"ART={art}",
        f"INSTALLED={art}/installed",
    ]
    command += ["-n", *goals] if dry_run else goals
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def built_tree(tmp_path: Path, small_curated: Path, model_path: Path) -> Path:
    """A checkout whose artifacts folder has every step done but the sample prediction.

    make decides by timestamps alone, so MNIST and the outputs of steps that are not under test
    (the checkpoint, the evaluations, the report) stand in as files, each newer than its inputs,
    all in the past.
    """
    checkout = tmp_path / "repo"
    shutil.copytree(REPO, checkout, ignore=shutil.ignore_patterns(*NOT_COPIED))
    sources = sorted(p for p in checkout.rglob("*") if p.is_file())
    (checkout / ".venv").symlink_to(REPO / ".venv")
    art = checkout / "artifacts"
    shutil.copytree(small_curated, art / "curated")
    Image.fromarray(dataset.load_split(small_curated, "eval").images[0]).save(art / "sample.png")
    shutil.copyfile(model_path, art / "model.onnx")
    steps = [
        *sources,
        *(mnist.raw_dir(art / "mnist") / name for name in mnist.FILES),
        art / "installed",
        *sorted((art / "curated").glob("*.npz")),
        art / "curated" / "manifest.json",
        art / "curated" / "samples.png",
        art / "handwriting" / "manifest.json",
        art / "suite" / "manifest.json",
        art / "train" / "best.ckpt",
        art / "model.onnx",
        *(art / "eval" / f"{name}.json" for name in ("eval", "test", "other", "handwriting", "degraded")),
        art / "sample.png",
        art / "report" / "index.html",
    ]
    start = time.time() - 3600
    for age, path in enumerate(steps):
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text("stands in for the output of an earlier step\n")
        os.utime(path, (start + age,) * 2)
    planned, _ = make(checkout, "all", dry_run=True).communicate()
    assert "digits predict" in planned
    steps = ("digits-data", "digits-train", "digits evaluate", "digits robustness", "digits-report")
    assert not any(step in planned for step in steps), planned
    return checkout


@pytest.mark.slow
def test_two_make_all_at_once_both_succeed_and_the_work_is_done_once(tmp_path, small_curated, model_path):
    checkout = built_tree(tmp_path, small_curated, model_path)
    first, second = make(checkout, "all"), make(checkout, "all")
    results = [(p.wait(), *p.communicate()) for p in (first, second)]
    assert [code for code, _, _ in results] == [0, 0], results
    predicted = [out for _, out, _ in results if "digits predict --model" in out]
    assert len(predicted) == 1, results  # the other waited, then found it done
    art = checkout / "artifacts"
    prediction = json.loads((art / "sample-prediction.json").read_text())
    assert set(prediction) >= {"probs", "prediction"}
    assert sorted(p.name for p in art.iterdir() if p.name.startswith(".")) == [".make.lock"]


@pytest.mark.slow
def test_make_curates_again_when_split_files_are_newer_than_their_manifest(
    tmp_path, small_curated, model_path
):
    checkout = built_tree(tmp_path, small_curated, model_path)
    manifest = checkout / "artifacts" / "curated" / "manifest.json"
    out, _ = make(checkout, str(manifest), dry_run=True).communicate()
    assert "digits-data curate" not in out
    os.utime(manifest.with_name("eval.npz"))  # rewritten after its manifest, e.g. by an interrupted run
    out, _ = make(checkout, str(manifest), dry_run=True).communicate()
    art = checkout / "artifacts"
    assert f"digits-data curate --data-dir {art}/mnist --output-dir {art}/curated" in out


@pytest.mark.slow
@pytest.mark.parametrize("source", ["report.py", "templates/index.html"])
def test_a_changed_report_module_or_template_draws_the_report_again_and_nothing_else(
    tmp_path, small_curated, model_path, source
):
    checkout = built_tree(tmp_path, small_curated, model_path)
    (checkout / "packages/digits-report/src/digits_report" / source).touch()
    planned, _ = make(checkout, "all", dry_run=True).communicate()
    assert "digits-report" in planned
    assert not any(step in planned for step in ("digits-data", "digits-train", "digits evaluate")), planned
