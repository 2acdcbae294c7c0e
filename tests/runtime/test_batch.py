"""`digits batch` and `digits predict --workers`: local processes and a real Dask cluster on loopback.

Every answer is checked against `digits predict` on the same files (its JSON lines) and, bit for
bit, against the in-process Predictor. Faults are real: worker and driver processes killed by
their pids, full and read-only file systems, a scheduler address where nothing listens.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from digits_core.contract import META_FINGERPRINT
from digits_runtime import cli
from digits_runtime.predictor import Predictor

from helpers import assert_disk_full_line, assert_each_input_once, cli_runner, dask_cluster, digits

pq = pytest.importorskip("pyarrow.parquet")

BAD = {"b/corrupt.png", "b/empty.png", "b/notes.png"}

run = cli_runner(cli.COMMANDS, "digits")


@pytest.fixture(scope="module")
def predicted(archive, model) -> subprocess.CompletedProcess:
    """`digits predict` on the whole archive: the reference every engine must match."""
    return digits("predict", "--model", model, archive)


@pytest.fixture(scope="module")
def local_output(archive, model, tmp_path_factory) -> tuple[Path, dict]:
    output = tmp_path_factory.mktemp("local") / "out"
    done = digits("batch", "--model", model, archive, output, "--workers", "2")
    assert (done.returncode, done.stderr) == (0, "")
    return output, json.loads(done.stdout)


def rows(output: Path) -> list[dict]:
    return pq.read_table(output).to_pylist()


def assert_predict_answers(found: list[dict], predicted: subprocess.CompletedProcess, model: Path) -> None:
    """The rows are `digits predict`'s lines, in its order, and the Predictor's float32 bits."""
    lines = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert [r["path"] for r in found] == [line["path"] for line in lines]
    for row, line in zip(found, lines, strict=True):
        if "error" in line:
            assert row["error"] == line["error"]
            assert {k for k, v in row.items() if v is not None} == {"path", "error"}
            continue
        assert row["error"] is None
        assert {d: round(row[f"prob_{d}"], 6) for d in line["probs"]} == line["probs"]
        assert (row["prediction"], row["accepted"]) == (line["prediction"], line["accepted"])
    classified, errors = Predictor(model).classify_each([r["path"] for r in found])
    ok = [r for r in found if r["error"] is None]
    assert [e is None for e in errors] == [r["error"] is None for r in found]
    probabilities = np.array([[r["prob_0"], r["prob_5"], r["prob_8"]] for r in ok], dtype=np.float32)
    assert np.array_equal(probabilities, classified.probabilities)
    assert np.array_equal(np.array([r["score"] for r in ok]), classified.scores)
    assert np.array_equal(np.array([r["accepted"] for r in ok]), classified.accepted)


@pytest.mark.slow
def test_local_engine_writes_the_answers_of_predict_bit_for_bit(local_output, predicted, model, archive):
    output, summary = local_output
    assert predicted.returncode == 1  # predict says some files failed; batch writes them as rows
    found = rows(output)
    assert_predict_answers(found, predicted, model)
    assert {r["path"] for r in found if r["error"]} == {str(archive / name) for name in BAD}
    names = sorted(p.name for p in output.iterdir())  # the parts, and nothing a reader would trip on
    assert [name[:12] for name in names] == ["part-000000-", "part-000001-", "part-000002-"]
    for name in names:
        data = (output / name).read_bytes()
        assert name == f"part-{name[5:11]}-{hashlib.sha256(data).hexdigest()[:16]}.parquet"
        metadata = pq.read_metadata(output / name).metadata
        assert metadata[b"digits.model_sha256"].decode() == hashlib.sha256(model.read_bytes()).hexdigest()
        assert json.loads(metadata[b"digits.labels"]) == [0, 5, 8]
        assert metadata[b"digits.fingerprint"].decode() == Predictor(model).metadata[META_FINGERPRINT]
        assert json.loads(metadata[b"digits.part"])["index"] == int(name[5:11])
    refused = sum(r["accepted"] is False for r in found)
    assert 0 < refused < 600
    assert {k: summary[k] for k in ("inputs", "scored", "refused", "errors", "parts", "partition_size")} == {
        "inputs": 604,
        "scored": 601,
        "refused": refused,
        "errors": 3,
        "parts": 3,
        "partition_size": 256,
    }
    assert (summary["engine"], summary["workers"], summary["parts_kept"]) == ("local", 2, 0)
    assert summary["model_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()
    assert summary["fingerprint"] == Predictor(model).metadata[META_FINGERPRINT]
    assert summary["source"] == str(archive)
    assert sum(summary["parts_by_worker"].values()) == 3
    assert summary["images_per_second"] > 0


@pytest.mark.slow
def test_one_worker_writes_the_same_parts_as_two(local_output, archive, model, tmp_path):
    done = digits("batch", "--model", model, archive, tmp_path / "one", "--workers", "1")
    assert done.returncode == 0
    for part in sorted(local_output[0].glob("part-*.parquet")):
        assert pq.read_table(tmp_path / "one" / part.name).equals(pq.read_table(part))


@pytest.mark.slow
def test_predict_with_two_workers_prints_the_same_lines(predicted, archive, model):
    done = digits("predict", "--model", model, "--workers", "2", archive)
    assert (done.returncode, done.stdout, done.stderr) == (1, predicted.stdout, predicted.stderr)
    assert predicted.stdout.count("\n") == 604


@pytest.mark.slow
def test_dask_cluster_both_workers_score_parts_with_the_same_answers(
    local_output, archive, long_archive, model, tmp_path
):
    with dask_cluster(tmp_path / "cluster") as (address, workers):
        # Eight parts of half a second or more each, so that both workers are surely busy at once.
        slow = digits(
            "batch",
            "--model",
            model,
            long_archive[0],
            tmp_path / "slow",
            "--partition-size",
            "256",
            "--engine",
            "dask",
            "--scheduler",
            address,
        )
        env = {**os.environ, "DASK_SCHEDULER_ADDRESS": address}
        mixed = digits("batch", "--model", model, archive, tmp_path / "mixed", "--engine", "dask", env=env)
    assert (slow.returncode, slow.stderr) == (0, "")
    summary = json.loads(slow.stdout)
    assert (summary["engine"], summary["scheduler"], summary["workers"]) == ("dask", address, 2)
    pids = {int(name.rsplit("/", 1)[1]) for name in summary["parts_by_worker"]}
    assert pids == {w.pid for w in workers}
    assert len(list((tmp_path / "slow").glob("part-*.parquet"))) == 8
    assert_each_input_once(tmp_path / "slow", long_archive, model)
    assert (mixed.returncode, mixed.stderr) == (0, "")
    assert json.loads(mixed.stdout)["scheduler"] == address
    for part in sorted(local_output[0].glob("part-*.parquet")):  # the answers of predict, errors included
        assert pq.read_table(tmp_path / "mixed" / part.name).equals(pq.read_table(part))


@pytest.mark.slow
def test_a_part_cut_short_is_scored_again_and_the_others_kept(local_output, archive, model, tmp_path):
    output = tmp_path / "out"
    shutil.copytree(local_output[0], output)
    first, cut, last = sorted(output.iterdir())
    whole = cut.read_bytes()
    cut.write_bytes(whole[: len(whole) // 2])
    kept = {part.name: part.stat().st_mtime_ns for part in (first, last)}
    again = digits("batch", "--model", model, archive, output, "--workers", "2")
    assert (again.returncode, again.stderr) == (0, "")
    summary = json.loads(again.stdout)
    assert (summary["parts_kept"], sum(summary["parts_by_worker"].values())) == (2, 1)
    assert {k: summary[k] for k in ("inputs", "scored", "refused", "errors")} == {
        k: local_output[1][k] for k in ("inputs", "scored", "refused", "errors")
    }
    assert sorted(output.iterdir()) == [first, cut, last]
    assert cut.read_bytes() == whole
    assert {name: (output / name).stat().st_mtime_ns for name in kept} == kept


@pytest.mark.slow
def test_a_complete_job_run_again_does_nothing_and_another_job_is_refused(
    capsys, local_output, archive, model, tmp_path
):
    output, summary = local_output
    before = {part: part.stat().st_mtime_ns for part in output.iterdir()}
    for typed in (output, f"{output}/", os.path.relpath(output)):  # however OUTPUT and INPUT are typed
        again = digits("batch", "--model", model, os.path.relpath(archive), typed, "--workers", "2")
        assert again.returncode == 0
        assert again.stderr == f"digits batch: {typed} is already complete\n"
        run_only = {"seconds", "images_per_second", "parts_kept", "parts_by_worker"}
        assert {k: v for k, v in json.loads(again.stdout).items() if k not in run_only} == {
            k: v for k, v in summary.items() if k not in run_only
        }
        assert json.loads(again.stdout)["parts_kept"] == 3
    assert {part: part.stat().st_mtime_ns for part in output.iterdir()} == before
    # Refused before any work: in this process.
    code, out, err = run(capsys, "batch", "--model", model, archive / "a", output)
    assert (code, out) == (1, "")
    assert err == (
        f"digits: error: {output} holds the results of another job (other inputs, model or partition "
        "size): give a new folder, or remove this one to start again\n"
    )
    stranger = tmp_path / "mine"
    stranger.mkdir()
    (stranger / "thesis.txt").write_text("mine")
    code, _, err = run(capsys, "batch", "--model", model, archive, stranger)
    assert code == 1
    assert err == (
        f"digits: error: {stranger} holds files that digits batch did not write (thesis.txt): "
        "give a new or empty folder, or move them out\n"
    )


@pytest.mark.slow
def test_output_that_is_a_file_read_only_or_full(capsys, archive, model, tmp_path, small_disk):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # Refused before any work: in this process. The full disk is met by a real job.
    code, _, err = run(capsys, "batch", "--model", model, archive, blocker)
    assert (code, err) == (1, f"digits: error: {blocker} is a file: give a folder for the Parquet files\n")
    read_only = small_disk(64, read_only=True) / "out"
    code, _, err = run(capsys, "batch", "--model", model, archive, read_only)
    assert (code, err) == (
        1,
        f"digits: error: cannot create output folder {read_only}: Read-only file system\n",
    )
    full = small_disk(16) / "out"
    done = digits("batch", "--model", model, archive, full, "--workers", "1")
    assert done.returncode == 1
    written = sorted(p.name for p in full.iterdir())  # no scratch left, and nothing looks complete
    assert [name[:12] for name in written] == [f"part-{i:06d}-" for i in range(len(written))]
    assert_disk_full_line(
        re.sub(r"part-(\d{6})-[0-9a-f]{16}", r"part-\1", done.stderr),
        "digits",
        full / f"part-{len(written):06d}.parquet",
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--engine", "ray"], "--engine must be local or dask, got 'ray'"),
        (["--partition-size", "100"], "--partition-size must be between 256 and 1048576, got 100"),
        (["--partition-size", "300"], "--partition-size must be a multiple of 256, got 300"),
        (["--workers", "0"], "--workers must be between 1 and"),
        (["--scheduler", "tcp://127.0.0.1:8786"], "--scheduler is for --engine dask"),
        (["--connect-timeout", "2"], "--connect-timeout is for --engine dask"),
        (
            ["--engine", "dask", "--scheduler", "tcp://127.0.0.1:8786", "--connect-timeout", "0"],
            "--connect-timeout must be in (0.0, 3600.0), got 0.0",
        ),
        (
            ["--engine", "dask", "--scheduler", "tcp://127.0.0.1:8786", "--connect-timeout", "soon"],
            "--connect-timeout must be a number, got 'soon'",
        ),
        (["--engine", "dask"], "--engine dask needs --scheduler tcp://HOST:PORT (or DASK_SCHEDULER_ADDRESS)"),
        (
            ["--engine", "dask", "--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"],
            "--workers is for --engine local: a Dask cluster has the workers it was given",
        ),
    ],
)
def test_usage_errors(capsys, monkeypatch, model, archive, tmp_path, argv, message):
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    code, out, err = run(capsys, "batch", "--model", model, archive, tmp_path / "out", *argv)
    assert (code, out) == (2, "")
    assert err.startswith(f"digits: error: {message}")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_inputs_glob_uri_missing_and_empty(capsys, local_output, archive, model, tmp_path):
    expected = {r["path"]: r for r in rows(local_output[0])}
    by_glob = digits("batch", "--model", model, f"{archive}/a/*.png", tmp_path / "glob")
    assert by_glob.returncode == 0
    found = rows(tmp_path / "glob")
    assert [r["path"] for r in found] == sorted(str(p) for p in (archive / "a").glob("*.png"))
    assert all(r == expected[r["path"]] for r in found)
    by_uri = digits("batch", "--model", model, f"file://{archive}/", tmp_path / "uri")
    assert by_uri.returncode == 0, by_uri.stderr
    found = rows(tmp_path / "uri")
    assert len(found) == len(expected)
    for row in found:
        local = expected[row["path"].removeprefix("file://")]
        assert {**row, "path": None, "error": None} == {**local, "path": None, "error": None}
        assert (row["error"] is None) == (local["error"] is None)
    # Refused before any work: in this process.
    code, _, err = run(capsys, "batch", "--model", model, tmp_path / "nowhere", tmp_path / "out")
    assert (code, err) == (1, f"digits: error: {tmp_path / 'nowhere'}: no such file or folder\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run(capsys, "batch", "--model", model, empty, tmp_path / "out")
    assert code == 1
    assert err.startswith(f"digits: error: folder {empty} holds no image files (")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_score_a_partition_of_paths_or_bytes(local_output, model):
    from digits_runtime.batch import score

    expected = [r for i, r in enumerate(rows(local_output[0])) if i < 10 or r["error"]]
    paths = [r["path"] for r in expected]
    assert score(paths, model=model) == expected
    from_bytes = score([Path(p).read_bytes() for p in paths], model=model.read_bytes())
    for row, by_path in zip(from_bytes, expected, strict=True):
        assert row["path"] is None
        if by_path["error"] is None:
            assert {**row, "path": by_path["path"]} == by_path
    missing = f"file://{Path(paths[0]).parent}/missing[1].png"  # a URI, read as a name, not a glob
    by_uri = score([f"file://{paths[0]}", missing], model=model)
    assert by_uri[0] == {**expected[0], "path": f"file://{paths[0]}"}
    assert by_uri[1]["error"] == (
        f"{missing} cannot be read: [Errno 2] No such file or directory: '{missing.removeprefix('file://')}'"
    )
    assert [r["error"] for r in from_bytes[-3:]] == [
        "image could not be decoded, it may be truncated or corrupt (image file is truncated)",
        "image is empty (0 bytes)",
        "image is not an image file that can be read (PNG, JPEG, GIF, BMP, TIFF, WebP)",
    ]


@pytest.mark.slow
def test_runtime_and_predict_never_import_dask_or_pyarrow(archive, model):
    probe = (
        "import sys\n"
        "import digits_runtime\n"
        "from digits_core.cli_support import run_fire\n"
        "from digits_runtime import cli\n"
        f"argv = ['predict', '--model', {str(model)!r}, '--workers', '2', {str(archive / 'a')!r}]\n"
        "run_fire(cli.COMMANDS, 'digits', argv)\n"
        "heavy = {'dask', 'distributed', 'pyarrow', 'fsspec', 'torch'} & set(sys.modules)\n"
        "print(sorted(heavy), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.stderr.splitlines()[-1] == "[]"
    assert done.stdout.count("\n") == 301


@pytest.mark.slow
def test_the_batch_driver_leaves_parquet_to_its_workers(archive, model, tmp_path):
    # Arrow's thread pools can abort a process at exit; only the workers, never the driver, load it.
    probe = (
        "import sys\n"
        "from digits_core.cli_support import run_fire\n"
        "from digits_runtime import cli\n"
        f"argv = ['batch', '--model', {str(model)!r}, {str(archive)!r}, {str(tmp_path / 'out')!r}]\n"
        "code = run_fire(cli.COMMANDS, 'digits', [*argv, '--workers', '2'])\n"
        "print(code, 'pyarrow' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.stderr.splitlines()[-1] == "0 False"
    assert json.loads(done.stdout)["inputs"] == 604
    assert pq.read_table(tmp_path / "out").num_rows == 604


@pytest.mark.parametrize(
    ("missing", "engine", "message"),
    [
        (
            "distributed",
            "dask",
            "digits batch --engine dask needs the batch extra: pip install 'digits-runtime[batch]'",
        ),
        ("pyarrow", "local", "digits batch needs the batch extra: pip install 'digits-runtime[batch]'"),
    ],
)
@pytest.mark.slow
def test_without_the_batch_extra_one_line_says_what_to_install(
    archive, model, tmp_path, missing, engine, message
):
    probe = (
        "import sys\n"
        f"sys.modules[{missing!r}] = None  # as if not installed: importing it raises ImportError\n"
        "from digits_runtime.cli import main\n"
        "main()\n"
    )
    argv = [
        "batch",
        "--model",
        model,
        archive,
        tmp_path / "out",
        "--engine",
        engine,
        "--scheduler",
        "tcp://127.0.0.1:1",
    ]
    if engine == "local":
        argv = argv[:-2]
    done = subprocess.run(
        [sys.executable, "-c", probe, *map(str, argv)], capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stdout, done.stderr) == (1, "", f"digits: error: {message}\n")


def test_predict_workers_out_of_bounds_is_a_usage_error(capsys, model, archive):
    cores = os.cpu_count()
    for workers in (0, cores + 1):
        code, out, err = run(capsys, "predict", "--model", model, "--workers", workers, archive)
        assert (code, out) == (2, "")
        assert err == f"digits: error: --workers must be between 1 and {cores}, got {workers}\n"
