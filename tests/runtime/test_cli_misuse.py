"""`digits` used carelessly: bad option values, missing values, unknown flags and commands,
unwritable HOME, a closed pipe and a full output device. Each is refused before any work,
with one line on stderr and the documented exit code."""

import os
import subprocess
import sys

import pytest

from digits_runtime import cli
from digits_runtime.predictor import MAX_THREADS

from helpers import cli_runner, save_eval_image

EXE = [sys.executable, "-m", "digits_runtime"]


run = cli_runner(cli.COMMANDS, "digits")


@pytest.fixture(scope="module")
def image(small_curated, tmp_path_factory):
    return save_eval_image(small_curated, tmp_path_factory.mktemp("misuse"))


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0", f"must be between 1 and {MAX_THREADS}, got 0"),
        ("-3", f"must be between 1 and {MAX_THREADS}, got -3"),
        ("100000", f"must be between 1 and {MAX_THREADS}, got 100000"),
        ("abc", "must be a whole number, got 'abc'"),
        ("1.5", "must be a whole number, got 1.5"),
    ],
)
@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_threads_out_of_bounds_is_a_usage_error(
    capsys, model_path, small_curated, image, command, value, problem
):
    args = [image] if command == "predict" else ["--curated-dir", small_curated]
    code, out, err = run(capsys, command, "--model", model_path, "--threads", value, *args)
    assert (code, out, err) == (2, "", f"digits: error: --threads {problem}\n")


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--json"], "--json"),
        (["--json", "--split", "val"], "--json"),
        (["--curated-dir"], "--curated-dir"),
        (["--model"], "--model"),
        (["--split"], "--split"),
    ],
)
def test_evaluate_option_without_value_is_refused_before_any_work(
    capsys, model_path, small_curated, argv, flag
):
    first = ["--model", model_path] if flag != "--model" else ["--curated-dir", small_curated]
    code, out, err = run(capsys, "evaluate", *first, *argv)
    assert (code, out) == (2, "")
    assert err == f"digits: error: {flag} needs a value: see `digits evaluate --help`\n"


def test_predict_model_without_value_is_refused(capsys, image):
    code, out, err = run(capsys, "predict", image, "--model")
    assert (code, out, err) == (2, "", "digits: error: --model needs a value: see `digits predict --help`\n")


def test_evaluate_json_naming_a_folder_is_refused_before_any_work(
    capsys, model_path, small_curated, tmp_path
):
    code, out, err = run(
        capsys, "evaluate", "--model", model_path, "--curated-dir", small_curated, "--json", tmp_path
    )
    assert (code, out) == (2, "")
    assert err == f"digits: error: --json {tmp_path} is a folder: give the path of a JSON file to write\n"


def test_evaluate_json_empty_is_a_usage_error_not_the_current_folder(
    capsys, model_path, small_curated, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(
        capsys, "evaluate", "--model", model_path, "--curated-dir", small_curated, "--json", ""
    )
    assert (code, out) == (2, "")
    assert err == "digits: error: --json must name a JSON file to write, got ''\n"
    assert list(tmp_path.iterdir()) == []


def test_single_dash_unknown_flag_is_refused_before_predicting(capsys, model_path, image):
    code, out, err = run(capsys, "predict", "-x", "--model", model_path, image)
    assert (code, out, err) == (
        2,
        "",
        "digits: error: digits predict has no option -x: see `digits predict --help`\n",
    )
    code, out, err = run(capsys, "predict", "-model", model_path, "-nope", image)
    assert (code, out) == (2, "")
    assert err == "digits: error: digits predict has no option -nope: see `digits predict --help`\n"


def test_short_flags_and_negative_numbers_still_reach_the_command(capsys, model_path, image):
    code, out, _ = run(capsys, "predict", "-m", model_path, image)
    assert code == 0
    assert out.startswith('{"probs": ')
    code, _, err = run(capsys, "predict", "-m", model_path, "-t", "-3", image)
    assert (code, err) == (2, f"digits: error: --threads must be between 1 and {MAX_THREADS}, got -3\n")


def test_unknown_or_missing_command_is_one_line(capsys):
    code, out, err = run(capsys, "classify", "x.png")
    assert (code, out, err) == (
        2,
        "",
        "digits: error: digits has no command 'classify': "
        "choose one of predict, evaluate, robustness, serve, batch\n",
    )
    code, out, err = run(capsys)
    assert (code, out, err) == (
        2,
        "",
        "digits: error: give a command: predict, evaluate, robustness, serve, batch (see `digits --help`)\n",
    )


@pytest.mark.slow
def test_unwritable_home_shows_only_our_error(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "XDG_CACHE_HOME"}
    env["HOME"] = "/proc/no-home"  # cannot be created, even by root
    missing = tmp_path / "none.onnx"
    done = subprocess.run(
        [*EXE, "predict", "--model", missing, "x.png"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 1
    assert done.stderr == f"digits: error: model {missing} does not exist: run `make train` to create it\n"


@pytest.mark.slow
def test_closed_pipe_ends_quietly(model_path, image):
    """Like `digits predict ... | head -1` once head has gone: no traceback, SIGPIPE's exit code."""
    with subprocess.Popen(
        [*EXE, "predict", "--model", model_path, image, image, image],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as reader:
        reader.stdout.close()  # the child is still importing: its first write meets a closed pipe
        err = reader.stderr.read()
    assert (reader.returncode, err) == (141, b"")


@pytest.mark.slow
def test_full_output_device_is_one_line(model_path, image):
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [*EXE, "predict", "--model", model_path, image], stdout=full, stderr=subprocess.PIPE, text=True
        )
    assert done.returncode == 1
    assert done.stderr == "digits: error: cannot write to standard output: No space left on device\n"


def test_evaluate_json_on_a_full_disk_is_one_line(capsys, model_path, small_curated, small_disk):
    disk = small_disk(4)
    target = disk / "eval.json"
    code, out, err = run(
        capsys, "evaluate", "--model", model_path, "--curated-dir", small_curated, "--json", target
    )
    assert (code, out) == (1, "")  # no report printed for a JSON that could not be written
    assert (
        err
        == f"digits: error: cannot write {target}: No space left on device; free some space and run again\n"
    )
    assert list(disk.iterdir()) == []


def test_evaluate_test_split_of_a_moved_curated_folder_takes_data_dir(
    capsys, model_path, small_curated, mnist_dir, tmp_path, monkeypatch
):
    moved = tmp_path / "elsewhere" / "curated"
    moved.parent.mkdir()
    moved.symlink_to(small_curated)
    monkeypatch.chdir(tmp_path)
    argv = ["evaluate", "--model", model_path, "--curated-dir", moved, "--split", "test"]
    code, out, err = run(capsys, *argv)
    assert (code, out) == (1, "")
    assert err.startswith(
        f"digits: error: MNIST is neither in {moved.parent / 'mnist'} nor in artifacts/mnist: "
    )
    code, out, _ = run(capsys, *argv, "--data-dir", mnist_dir)
    assert code == 0
    assert f"on the test split of {moved} (2846 images)" in out


def test_serve_without_digits_serve_says_what_to_install(capsys, model_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "digits_serve", None)  # as if not installed: importing it fails
    code, out, err = run(capsys, "serve", "--model", model_path, "--port", "0")
    assert (code, out) == (1, "")
    assert err.startswith("digits: error: digits serve needs the serve extra (")
    assert err.endswith("): pip install 'digits-runtime[serve]'\n")
    assert err.count("\n") == 1
