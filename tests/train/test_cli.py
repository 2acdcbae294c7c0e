"""digits-train's command line: each bad input gives one line, a non-zero exit and no partial files."""

import subprocess
import sys

import pytest

from digits_train import cli

from helpers import cli_runner, tampered_copy

run = cli_runner(cli.COMMANDS, "digits-train")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "21"], "--epochs must be between 1 and 20, got 21"),
        (["--epochs", "0"], "--epochs must be between 1 and 20, got 0"),
        (["--learning-rate", "0"], "--learning-rate must be in (0.0, 1.0), got 0.0"),
        (["--learning-rate", "fast"], "--learning-rate must be a number, got 'fast'"),
        (["--batch-size", "0"], "--batch-size must be between 1 and 4096, got 0"),
        (["--augment", "maybe"], "--augment must be true or false, got 'maybe'"),
        (["--schedule", "cosine"], "--schedule must be one of onecycle, plateau, got 'cosine'"),
        (["--selection", "worst"], "--selection must be one of final, best, got 'worst'"),
        (["--class-weighting", "none"], "--class-weighting must be one of sqrt, inverse, got 'none'"),
        (["--ema-decay", "1"], "--ema-decay must be below 1 (1 would never move the average), got 1.0"),
        (["--ema-decay", "-0.5"], "--ema-decay must be in [0.0, 1.0], got -0.5"),
        (["--members", "0"], "--members must be between 1 and 8, got 0"),
        (["--elastic", "0.9"], "--elastic must be in [0.0, 0.5], got 0.9"),
        (["--typeset", "-1"], "--typeset must be between 0 and 100000, got -1"),
        (["--outlier-weight", "-1"], "--outlier-weight must be in [0.0, 10.0], got -1.0"),
        (["--outlier-target", "none"], "--outlier-target must be one of reject, uniform, got 'none'"),
        (["--outliers-per-epoch", "-1"], "--outliers-per-epoch must be between 0 and 1000000, got -1"),
        (["--hard-outliers", "1.5"], "--hard-outliers must be in [0.0, 1.0], got 1.5"),
        (
            ["--hard-outliers", "0.5", "--outliers-per-epoch", "0"],
            "--hard-outliers picks among the outliers drawn each epoch: give it with "
            "--outliers-per-epoch and --outlier-weight above 0, or leave it at 0",
        ),
        (["--threads", "0"], "--threads must be between 1 and 1024, got 0"),
    ],
)
@pytest.mark.slow
def test_out_of_range_arguments_exit_2(capsys, small_curated, tmp_path, args, message):
    code, _, err = run(capsys, "fit", "--curated-dir", small_curated, "--output-dir", tmp_path / "o", *args)
    assert (code, err) == (2, f"digits-train: error: {message}\n")
    assert not (tmp_path / "o").exists()


def test_missing_or_incomplete_curated_folder(capsys, small_curated, tmp_path):
    code, _, err = run(capsys, "fit", "--curated-dir", tmp_path / "none", "--output-dir", tmp_path / "o")
    assert code == 1
    assert err == (
        f"digits-train: error: curated folder {tmp_path / 'none'} does not exist: "
        "run `make curate` (or `digits-data curate`) to create it\n"
    )
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "train.npz").write_bytes((small_curated / "train.npz").read_bytes())
    code, _, err = run(capsys, "fit", "--curated-dir", partial, "--output-dir", tmp_path / "o")
    assert code == 1
    assert "manifest.json is missing, so" in err
    assert "is incomplete: run `make curate`" in err
    assert not (tmp_path / "o").exists()


def test_checksum_mismatch(capsys, small_curated, tmp_path):
    copy = tampered_copy(small_curated, tmp_path / "c", "train.npz")
    code, _, err = run(capsys, "fit", "--curated-dir", copy, "--output-dir", tmp_path / "o")
    assert code == 1
    assert f"{copy / 'train.npz'} does not match the sha256 in {copy / 'manifest.json'}" in err
    assert not (tmp_path / "o" / "best.ckpt").exists()


def test_bad_checkpoints(capsys, trained, tmp_path):
    import torch  # here: the other tests of the command line need none of it

    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}, "epoch": 3}, foreign)
    out = tmp_path / "m.onnx"
    code, _, err = run(capsys, "export", "--checkpoint-path", foreign, "--output", out)
    assert (code, err) == (
        1,
        f"digits-train: error: {foreign} is not a digits-train checkpoint: "
        "it lacks the labels and normalization\n",
    )
    truncated = tmp_path / "cut.ckpt"
    truncated.write_bytes((trained["dir"] / "best.ckpt").read_bytes()[:5000])
    code, _, err = run(capsys, "export", "--checkpoint-path", truncated, "--output", out)
    assert code == 1
    assert err.startswith(
        f"digits-train: error: {truncated} is not a readable checkpoint (truncated or corrupt?): "
    )
    assert err.count("\n") == 1
    code, _, err = run(capsys, "export", "--checkpoint-path", tmp_path / "none.ckpt", "--output", out)
    assert err == (
        f"digits-train: error: checkpoint {tmp_path / 'none.ckpt'} does not exist: "
        "run `make train` (or `digits-train fit`)\n"
    )
    assert not out.exists()
    assert list(tmp_path.glob(".m.onnx*")) == []


@pytest.mark.slow
def test_help_and_usage_as_a_process(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "digits_train", "fit", "--epochs", "99"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr == "digits-train: error: --epochs must be between 1 and 20, got 99\n"
    done = subprocess.run(
        [sys.executable, "-m", "digits_train", "export", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert "Export a checkpoint to a single ONNX file" in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["export", "--output"], "--output"),
        (["export", "--checkpoint-path", "--output", "m.onnx"], "--checkpoint-path"),
        (["fit", "--curated-dir"], "--curated-dir"),
        (["fit", "--augment", "--output-dir"], "--output-dir"),
    ],
)
def test_option_without_value_is_refused_before_any_work(capsys, tmp_path, monkeypatch, argv, flag):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err == f"digits-train: error: {flag} needs a value: see `digits-train {argv[0]} --help`\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("command", "flag"), [("fit", "--output-dir"), ("export", "--output")])
def test_an_empty_output_path_is_a_usage_error_not_the_current_folder(
    capsys, tmp_path, monkeypatch, command, flag
):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, command, flag, "")
    assert (code, out) == (2, "")
    assert err == f"digits-train: error: {flag} must name a path to write, got ''\n"
    assert list(tmp_path.iterdir()) == []
