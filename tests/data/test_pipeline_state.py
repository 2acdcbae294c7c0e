"""Pipeline state under faults: interrupted, killed and concurrent runs, full and read-only disks,
moved folders and edited manifests. Outputs change together or not at all, leftovers of killed
runs go away with the next run, and every failure is one line naming the file."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from digits_core import atomic, ownership
from digits_core.cli_support import run_fire
from digits_core.errors import DigitsError
from digits_data import cli, curate, dataset, handwriting, mnist
from digits_data.contact_sheet import write_contact_sheet

from helpers import assert_disk_full_line

TINY = {"class_counts": {0: 30, 5: 20, 8: 30}, "other_train_per_digit": 2, "other_val_per_digit": 1}


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def scratch_of(folder):
    return sorted(folder.parent.glob(f".{folder.name}.*.tmp"))


@pytest.fixture
def curated(small_curated, tmp_path):
    """A private copy of the small curation, free to be damaged."""
    return shutil.copytree(small_curated, tmp_path / "curated")


@pytest.mark.slow
def test_fingerprint_does_not_depend_on_where_the_folder_is(mnist_dir, tmp_path):
    near, far = tmp_path / "c1", tmp_path / "x" / "y" / "z" / "c2"
    curate.curate(mnist_dir, near, **TINY)
    curate.curate(mnist_dir, far, **TINY)
    assert snapshot(near) == snapshot(far)
    assert dataset.fingerprint(near) == dataset.fingerprint(far)


@pytest.mark.slow
def test_a_moved_curated_folder_finds_mnist_beside_it_or_is_told_where(
    curated, mnist_dir, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # no artifacts/mnist here
    with pytest.raises(DigitsError) as raised:
        dataset.load_test_split(curated)
    assert str(raised.value) == (
        f"MNIST is neither in {tmp_path / 'mnist'} nor in artifacts/mnist: pass --data-dir, "
        "the folder `digits-data download` wrote (it holds MNIST/raw/)"
    )
    assert len(dataset.load_test_split(curated, data_dir=mnist_dir)) == 2846
    (tmp_path / "mnist").symlink_to(mnist_dir)  # where `make` puts it, beside the curated folder
    assert len(dataset.load_test_split(curated)) == 2846


@pytest.mark.slow
def test_an_interrupted_curate_leaves_the_previous_curation(curated, mnist_dir, monkeypatch):
    before = snapshot(curated)
    written = []

    def interrupted(path, split):
        if written:
            raise KeyboardInterrupt  # Ctrl-C after the first split file
        written.append(path)
        return dataset.write_split(path, split)

    monkeypatch.setattr(curate, "write_split", interrupted)
    with pytest.raises(KeyboardInterrupt):
        curate.curate(mnist_dir, curated, **TINY)
    assert len(written) == 1
    assert snapshot(curated) == before
    assert scratch_of(curated) == []


@pytest.mark.slow
def test_a_killed_curate_leaves_scratch_that_the_next_run_removes(curated, mnist_dir):
    before = snapshot(curated)
    killer = textwrap.dedent(
        f"""
        import os, signal
        from digits_data import curate, dataset

        def write_then_die(path, split):
            dataset.write_split(path, split)
            os.kill(os.getpid(), signal.SIGKILL)

        curate.write_split = write_then_die
        curate.curate({str(mnist_dir)!r}, {str(curated)!r}, **{TINY!r})
        """
    )
    done = subprocess.run([sys.executable, "-c", killer], capture_output=True, text=True)
    assert done.returncode == -9
    assert snapshot(curated) == before
    (leftover,) = scratch_of(curated)
    assert [p.name for p in leftover.iterdir()] == ["train.npz"]
    curate.curate(mnist_dir, curated, **TINY)
    assert scratch_of(curated) == []
    assert dataset.load_manifest(curated)["splits"]["eval"]["n"] == 16


@pytest.mark.slow
def test_a_second_curate_waits_for_the_first(curated, mnist_dir):
    command = [sys.executable, "-m", "digits_data", "curate", "--data-dir", str(mnist_dir)]
    command += ["--output-dir", str(curated), "--class-counts", "{0: 30, 5: 20, 8: 30}"]
    command += ["--other-train-per-digit", "2", "--other-val-per-digit", "1"]
    with atomic.exclusive(curated):  # as the first run holds it
        second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first_line = second.stderr.readline()
        assert first_line == f"waiting for another run that is writing {curated} ...\n"
        assert second.poll() is None
    out, err = second.communicate()
    assert (second.returncode, err) == (0, "")
    assert out.startswith(f"curated 80 images and 21 outliers into {curated}\n")
    assert dataset.load_manifest(curated)["class_counts"] == {"0": 30, "5": 20, "8": 30}


def test_curate_never_replaces_a_folder_holding_other_files(mnist_dir, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    (folder / "eval.npz").write_bytes(b"old")
    with pytest.raises(DigitsError) as raised:
        curate.curate(mnist_dir, folder, **TINY)
    assert str(raised.value) == (
        f"{folder} holds files `digits-data curate` did not write (eval.npz, thesis.tex), so it will not "
        "replace it: move them out or choose a new or empty output folder"
    )
    assert snapshot(folder) == {"eval.npz": b"old", "thesis.tex": b"years of work"}


def test_curate_refuses_a_folder_of_the_users_own_npz_files(capsys, mnist_dir, tmp_path):
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "my_experiment_results.npz").write_bytes(b"weeks of runs")
    argv = ["curate", "--data-dir", str(mnist_dir), "--output-dir", str(folder), "--class-counts"]
    code = run_fire(cli.COMMANDS, "digits-data", [*argv, "{0: 30, 5: 20, 8: 30}"])
    captured = capsys.readouterr()
    assert (code, captured.out) == (1, "")
    assert captured.err == (
        f"digits-data: error: {folder} holds files `digits-data curate` did not write "
        "(my_experiment_results.npz), so it will not replace it: move them out or choose a new or empty "
        "output folder\n"
    )
    assert snapshot(folder) == {"my_experiment_results.npz": b"weeks of runs"}
    assert scratch_of(folder) == []


@pytest.mark.slow
def test_curate_records_what_it_wrote_and_replaces_only_that(curated, mnist_dir):
    written = sorted(p.name for p in curated.iterdir() if p.name != ownership.MARK)
    assert ownership.written_by(curated) == {"step": "digits-data curate", "files": written}
    write_contact_sheet(curated, curated / "samples.png")  # what `make inspect` adds to the folder
    (curated / ".samples.png.k3j2.tmp").write_bytes(b"half")  # left by an inspect that was killed
    curate.curate(mnist_dir, curated, **TINY)  # its own folder: replaced whole
    assert sorted(p.name for p in curated.iterdir()) == sorted([ownership.MARK, *written])
    (curated / "my_experiment_results.npz").write_bytes(b"weeks of runs")  # added by the user since
    before = snapshot(curated)
    with pytest.raises(DigitsError, match=r"did not write \(my_experiment_results.npz\)"):
        curate.curate(mnist_dir, curated, **TINY)
    assert snapshot(curated) == before


CURATE_TINY = ["--class-counts", "{0: 30, 5: 20, 8: 30}", "--other-train-per-digit", "2"]


def curate_cli(capsys, mnist_dir, folder):
    argv = ["curate", "--data-dir", str(mnist_dir), "--output-dir", str(folder), *CURATE_TINY]
    code = run_fire(cli.COMMANDS, "digits-data", argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("forgery", ["names, as the previous version wrote", "wrong sha256", "link"])
def test_a_record_naming_a_users_files_gets_none_of_them_deleted(
    capsys, curated, mnist_dir, tmp_path, forgery
):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "eval.npz").write_bytes(b"my own eval split")
    (mine / "thesis.tex").write_bytes(b"years of work")
    if forgery == "link":  # a real record, of a real curated folder
        (mine / ownership.MARK).symlink_to(curated / ownership.MARK)
        problem = (
            f"{mine / ownership.MARK} is a link, pipe or other non-regular file, which proves nothing, so "
            f"`digits-data curate` will not replace {mine}: remove it if {mine} is yours to lose, "
            "or choose another output folder"
        )
    else:
        record = {"step": "digits-data curate", "files": ["eval.npz", "thesis.tex"]}
        if forgery == "wrong sha256":
            record |= {"format": 2, "sha256": {"eval.npz": "0" * 64, "thesis.tex": "1" * 64}}
            problem = (
                f"{mine} holds files changed since `digits-data curate` wrote them (eval.npz, thesis.tex), "
                "so it will not replace it: move them out (or delete them if they are not needed) or "
                "choose another output folder"
            )
        else:
            problem = (
                f"{mine} has a record of an older version, which lists names but not contents, so "
                "`digits-data curate` cannot tell its files from a user's and will not replace it: "
                f"delete {mine} yourself if nothing in it is needed, or choose another output folder"
            )
        (mine / ownership.MARK).write_text(json.dumps(record))
    before = snapshot(mine)
    assert curate_cli(capsys, mnist_dir, mine) == (1, "", f"digits-data: error: {problem}\n")
    assert snapshot(mine) == before
    assert scratch_of(mine) == []


@pytest.mark.slow
def test_a_pipe_named_like_a_record_is_refused_at_once_and_never_opened(mnist_dir, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "eval.npz").write_bytes(b"my own eval split")
    os.mkfifo(mine / ownership.MARK)  # reading it would wait for a writer forever
    command = [sys.executable, "-m", "digits_data", "curate", "--data-dir", str(mnist_dir)]
    command += ["--output-dir", str(mine), *CURATE_TINY]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"digits-data: error: {mine / ownership.MARK} is a link, pipe or other non-regular file, which "
        f"proves nothing, so `digits-data curate` will not replace {mine}: remove it if {mine} is yours to "
        "lose, or choose another output folder\n"
    )
    assert (mine / "eval.npz").read_bytes() == b"my own eval split"


def test_curate_never_replaces_a_split_edited_since_it_wrote_it(capsys, curated, mnist_dir):
    (curated / "train.npz").write_bytes((curated / "train.npz").read_bytes() + b"an edit")
    before = snapshot(curated)
    code, out, err = curate_cli(capsys, mnist_dir, curated)
    assert (code, out) == (1, "")
    assert err == (
        f"digits-data: error: {curated} holds files changed since `digits-data curate` wrote them "
        "(train.npz), so it will not replace it: move them out (or delete them if they are not needed) "
        "or choose another output folder\n"
    )
    assert snapshot(curated) == before


@pytest.mark.slow
def test_a_contact_sheet_is_replaced_only_if_it_is_the_one_drawn_from_the_data(curated, mnist_dir):
    (curated / "samples.png").write_bytes(b"my own picture, named like the contact sheet")
    before = snapshot(curated)
    with pytest.raises(DigitsError, match=r"holds files changed since .* wrote them \(samples.png\)"):
        curate.curate(mnist_dir, curated, **TINY)
    assert snapshot(curated) == before
    write_contact_sheet(curated, curated / "samples.png")  # what `make inspect` draws there
    curate.curate(mnist_dir, curated, **TINY)
    assert "samples.png" not in snapshot(curated)


def test_an_older_curated_folder_whose_split_was_edited_is_not_replaced(curated, mnist_dir):
    (curated / ownership.MARK).unlink()  # older versions wrote no record: the manifest's sha256 prove it
    (curated / "val.npz").write_bytes(b"a user's own val split")
    before = snapshot(curated)
    with pytest.raises(DigitsError, match=r"did not write \(eval.npz, manifest.json, other_train.npz, ...\)"):
        curate.curate(mnist_dir, curated, **TINY)
    assert snapshot(curated) == before


@pytest.mark.slow
def test_curate_refuses_a_folder_another_step_wrote(mnist_dir, tmp_path):
    handwriting.write(tmp_path / "hw", per_style=1, seed=1)
    before = snapshot(tmp_path / "hw")
    with pytest.raises(DigitsError) as raised:
        curate.curate(mnist_dir, tmp_path / "hw", **TINY)
    assert str(raised.value) == (
        f"{tmp_path / 'hw'} was written by `digits-data handwriting`, not `digits-data curate`, "
        "so it will not replace it: choose another output folder"
    )
    assert snapshot(tmp_path / "hw") == before


@pytest.mark.slow
def test_a_curated_folder_of_an_older_version_is_replaced_if_its_manifest_lists_all_of_it(curated, mnist_dir):
    (curated / ownership.MARK).unlink()  # older versions wrote no record
    write_contact_sheet(curated, curated / "samples.png")
    curate.curate(mnist_dir, curated, **TINY)
    assert ownership.written_by(curated)["step"] == "digits-data curate"
    assert dataset.load_manifest(curated)["splits"]["eval"]["n"] == 16
    (curated / ownership.MARK).unlink()
    (curated / "old_train.npz").write_bytes(b"a user's copy")  # not in the manifest: not ours
    before = snapshot(curated)
    with pytest.raises(DigitsError, match=r"did not write \(.*old_train.npz.*\)"):
        curate.curate(mnist_dir, curated, **TINY)
    assert snapshot(curated) == before


@pytest.mark.slow
def test_a_curated_folder_with_the_previous_versions_record_is_replaced_when_its_manifest_proves_it(
    curated, mnist_dir
):
    names = sorted(p.name for p in curated.iterdir() if p.name != ownership.MARK)
    (curated / ownership.MARK).write_text(json.dumps({"step": "digits-data curate", "files": names}))
    write_contact_sheet(curated, curated / "samples.png")
    curate.curate(mnist_dir, curated, **TINY)
    assert json.loads((curated / ownership.MARK).read_text())["format"] == ownership.RECORD_FORMAT
    assert sorted(p.name for p in curated.iterdir()) == sorted([ownership.MARK, *names])


def test_curate_on_a_full_disk_is_one_line_and_leaves_nothing(capsys, mnist_dir, small_disk):
    disk = small_disk(64)
    out = disk / "curated"
    argv = [
        "curate",
        "--data-dir",
        str(mnist_dir),
        "--output-dir",
        str(out),
        "--class-counts",
        "{0: 30, 8: 30}",
    ]
    code = run_fire(cli.COMMANDS, "digits-data", argv)
    captured = capsys.readouterr()
    assert (code, captured.out) == (1, "")
    assert_disk_full_line(captured.err, "digits-data", out)
    assert sorted(p.name for p in disk.iterdir()) == [".curated.lock"]


def test_curate_into_a_read_only_place_is_one_line(capsys, mnist_dir, small_disk):
    disk = small_disk(64, read_only=True)
    code = run_fire(
        cli.COMMANDS, "digits-data", ["curate", "--data-dir", str(mnist_dir), "--output-dir", str(disk / "c")]
    )
    captured = capsys.readouterr()
    assert (code, captured.out) == (1, "")
    assert captured.err == (
        f"digits-data: error: output folder {disk} is not writable: choose another or fix its permissions\n"
    )


def test_inspect_compares_the_manifest_with_the_arrays(capsys, curated):
    manifest = json.loads((curated / "manifest.json").read_text())
    manifest["splits"]["eval"]["counts"]["5"] = 999
    (curated / "manifest.json").write_text(json.dumps(manifest))
    code = run_fire(cli.COMMANDS, "digits-data", ["inspect", "--curated-dir", str(curated)])
    captured = capsys.readouterr()
    assert (code, captured.out) == (1, "")
    assert captured.err == (
        f"digits-data: error: {curated / 'manifest.json'} says split eval has digit counts "
        "{'0': 24, '5': 999, '8': 36} where the file holds {'0': 24, '5': 12, '8': 36}: it was edited "
        f"after curation; delete {curated} and run `make curate` (or `digits-data curate`)\n"
    )


def without_normalization(manifest):
    del manifest["normalization"]


def classes_0_5(manifest):
    manifest["classes"] = [0, 5]


def more_fives_claimed(manifest):
    manifest["class_counts"]["5"] += 1


def classes_true_false_8(manifest):
    manifest["classes"] = [True, False, 8]


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (without_normalization, "lacks 'normalization'"),
        (classes_0_5, "says split train has counts for the digits [0, 5, 8] where its digits are [0, 5]"),
        (
            more_fives_claimed,
            "says the class counts are {'0': 120, '5': 61, '8': 180} where its splits add up to "
            "{'0': 120, '5': 60, '8': 180}",
        ),
        (
            classes_true_false_8,
            "lists classes [true, false, 8] (true is not a whole digit 0-9), not at least two distinct "
            "whole digits 0-9",
        ),
    ],
    ids=["no normalization", "classes [0, 5]", "class counts", "classes [true, false, 8]"],
)
def test_inspect_refuses_an_edited_manifest_in_one_line(capsys, curated, edit, problem):
    path = curated / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    code = run_fire(cli.COMMANDS, "digits-data", ["inspect", "--curated-dir", str(curated)])
    captured = capsys.readouterr()
    assert (code, captured.out) == (1, "")
    assert captured.err == (
        f"digits-data: error: {path} {problem}: it was edited after curation; delete {curated} and run "
        "`make curate` (or `digits-data curate`)\n"
    )


@pytest.mark.slow
def test_a_killed_download_leaves_nothing_the_next_run_keeps(mnist_dir, tmp_path):
    data = tmp_path / "data"
    raw = mnist.raw_dir(data)
    raw.mkdir(parents=True)
    for name in mnist.FILES[1:]:
        (raw / name).symlink_to(mnist.raw_dir(mnist_dir) / name)
    half = raw / f".{mnist.TRAIN_IMAGES}.k3j2.tmp"  # what a download killed while writing leaves
    half.write_bytes(b"\0" * 1000)
    pip_scratch = data / "downloads" / ".pip.x81.tmp"
    pip_scratch.mkdir(parents=True)
    shutil.copyfile(mnist.raw_dir(mnist_dir) / mnist.TRAIN_IMAGES, tmp_path / "images")
    (tmp_path / "local").mkdir()
    for name in mnist.FILES:
        (tmp_path / "local" / name).symlink_to(mnist.raw_dir(mnist_dir) / name)
    linked = {name: (mnist.raw_dir(mnist_dir) / name).stat() for name in mnist.FILES[1:]}
    mnist.download(data, str(tmp_path / "local"), log=lambda message: None)
    assert sorted(p.name for p in raw.iterdir()) == sorted(mnist.FILES)
    assert not pip_scratch.exists()
    assert mnist.verify(data)
    for name, before in linked.items():  # valid files are kept: the links, and what they point to
        assert (raw / name).is_symlink()
        after = (mnist.raw_dir(mnist_dir) / name).stat()
        assert (after.st_ino, after.st_mtime_ns, after.st_ctime_ns) == (
            before.st_ino,
            before.st_mtime_ns,
            before.st_ctime_ns,
        )


@pytest.mark.slow
def test_download_replaces_a_link_to_a_bad_file_and_leaves_what_it_pointed_to(mnist_dir, tmp_path):
    raw = mnist.raw_dir(tmp_path / "data")
    raw.mkdir(parents=True)
    elsewhere = tmp_path / "someone-elses" / mnist.TRAIN_LABELS
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b"not MNIST, and not ours")
    (raw / mnist.TRAIN_LABELS).symlink_to(elsewhere)
    shutil.copyfile(mnist.raw_dir(mnist_dir) / mnist.TEST_LABELS, raw / mnist.TEST_LABELS)
    kept = (raw / mnist.TEST_LABELS).stat()
    mnist.download(tmp_path / "data", str(mnist_dir), log=lambda message: None)
    assert mnist.verify(tmp_path / "data")
    assert not (raw / mnist.TRAIN_LABELS).is_symlink()  # the link gave way to the verified file
    assert elsewhere.read_bytes() == b"not MNIST, and not ours"
    again = (raw / mnist.TEST_LABELS).stat()  # a valid file is not written again
    assert (again.st_ino, again.st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)
