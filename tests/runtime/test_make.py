"""What `make` sees is what is there: two `make all` at once, and a curated folder changed after
curation. The real Makefile runs on a small artifacts tree in a temporary folder."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from digits_data import dataset

REPO = Path(__file__).resolve().parents[2]


def make(art: Path, *goals: str, dry_run: bool = False) -> subprocess.Popen:
    command = [
        "make",
        "--no-print-directory",
        "-C",
        str(REPO),
        f"ART={art}",
        *(["-n"] if dry_run else []),
        *goals,
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def built_tree(tmp_path: Path, small_curated: Path, model_path: Path, mnist_dir: Path) -> Path:
    """An artifacts folder in which every step has run except the sample prediction.

    make decides by timestamps alone, so the outputs of steps that are not under test (the
    checkpoint, the evaluations, the report) stand in as files, each newer than its inputs.
    """
    art = tmp_path / "artifacts"
    art.mkdir()
    (art / "installed").touch()
    (art / "mnist").symlink_to(mnist_dir)
    sources = [
        *(mnist_dir / "MNIST" / "raw").iterdir(),
        REPO / "packages/digits-data/src/digits_data/handwriting.py",
        REPO / "benchmarks/handwriting.py",
    ]
    start = 1 + max(p.stat().st_mtime for p in sources)  # newer than what the steps start from
    steps = [
        shutil.copytree(small_curated, art / "curated") / "manifest.json",
        art / "curated" / "samples.png",
        art / "handwriting" / "manifest.json",
        art / "train" / "best.ckpt",
        Path(shutil.copyfile(model_path, art / "model.onnx")),
        art / "eval" / "eval.json",
        art / "eval" / "test.json",
        art / "eval" / "other.json",
        art / "eval" / "handwriting.json",
        art / "sample.png",
        art / "report" / "index.html",
    ]
    for path in (art / "curated").iterdir():
        os.utime(path, (start, start))  # the curation, newer than MNIST, older than what follows
    Image.fromarray(dataset.load_split(small_curated, "eval").images[0]).save(art / "sample.png")
    for age, path in enumerate(steps, start=1):
        path.parent.mkdir(exist_ok=True)
        if not path.exists():
            path.write_text("stands in for the output of an earlier step\n")
        os.utime(path, (start + age,) * 2)
    planned, _ = make(art, "all", dry_run=True).communicate()
    assert "digits predict" in planned
    steps = ("digits-data", "digits-train", "digits evaluate", "benchmarks/handwriting.py", "digits-report")
    assert not any(step in planned for step in steps), planned
    return art


@pytest.mark.slow
def test_two_make_all_at_once_both_succeed_and_the_work_is_done_once(
    tmp_path, small_curated, model_path, mnist_dir
):
    art = built_tree(tmp_path, small_curated, model_path, mnist_dir)
    first, second = make(art, "all"), make(art, "all")
    results = [(p.wait(), *p.communicate()) for p in (first, second)]
    assert [code for code, _, _ in results] == [0, 0], results
    predicted = [out for _, out, _ in results if "digits predict --model" in out]
    assert len(predicted) == 1, results  # the other waited, then found it done
    prediction = json.loads((art / "sample-prediction.json").read_text())
    assert set(prediction) >= {"probs", "prediction"}
    assert sorted(p.name for p in art.iterdir() if p.name.startswith(".")) == [".make.lock"]


def test_make_curates_again_when_split_files_are_newer_than_their_manifest(
    tmp_path, small_curated, model_path, mnist_dir
):
    art = built_tree(tmp_path, small_curated, model_path, mnist_dir)
    out, _ = make(art, str(art / "curated" / "manifest.json"), dry_run=True).communicate()
    assert "digits-data curate" not in out
    os.utime(art / "curated" / "eval.npz")  # rewritten after its manifest, e.g. by an interrupted run
    out, _ = make(art, str(art / "curated" / "manifest.json"), dry_run=True).communicate()
    assert f"digits-data curate --data-dir {art}/mnist --output-dir {art}/curated" in out
