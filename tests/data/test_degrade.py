"""The degradation suite: every family, determinism, the stratified draw, the folder and its checks."""

import json

import numpy as np
import pytest
from PIL import Image

from digits_core import ownership
from digits_core.errors import DigitsError
from digits_core.images import load_image
from digits_data import cli, degrade, handwriting, suite, typefaces

from helpers import cli_runner, flip_byte

run = cli_runner(cli.COMMANDS, "digits-data")

DIGIT = np.zeros((28, 28), np.uint8)
DIGIT[6:22, 9:12] = DIGIT[6:22, 16:19] = DIGIT[6:9, 9:19] = DIGIT[19:22, 9:19] = 255  # a blocky 0


@pytest.mark.parametrize("family", suite.FAMILIES)
def test_every_family_gives_a_page_that_still_holds_the_digit(family):
    image = degrade.degrade(DIGIT, family, np.random.default_rng(3))
    assert image.dtype == np.uint8
    assert image.shape == (degrade.SIDE, degrade.SIDE)
    assert int(image.max()) - int(image.min()) > 30  # not blank: something is left to read
    again = degrade.degrade(DIGIT, family, np.random.default_rng(3))
    assert np.array_equal(image, again)  # one generator, one image
    assert load_image(Image.fromarray(image)).shape == (28, 28)


def test_families_are_grouped_once_each_and_clean_is_untouched():
    grouped = [f.__name__ for group in degrade.GROUPS.values() for f in group]
    assert len(grouped) == len(set(grouped)) == len(degrade.FAMILIES) == 30
    assert suite.FAMILIES[0] == "clean"
    clean = degrade.degrade(DIGIT, "clean", np.random.default_rng(0))
    ink = np.uint8(np.rint(degrade.upscale(DIGIT) * 255))
    assert np.array_equal(clean, ink) or np.array_equal(clean, 255 - ink)  # only the polarity varies


def test_stratified_draw_keeps_each_digits_share_and_the_count():
    labels = np.array([0] * 240 + [5] * 60 + [8] * 700)
    pick = suite._stratified(labels, 100, np.random.default_rng(1))
    assert len(pick) == 100 == len(set(pick.tolist()))
    assert np.bincount(labels[pick], minlength=9)[[0, 5, 8]].tolist() == [24, 6, 70]
    assert suite._stratified(labels, 5000, np.random.default_rng(1)).tolist() == list(range(1000))


def test_held_out_typefaces_are_never_trained_on():
    assert not set(typefaces.HELD_OUT_FACES) & set(typefaces.TRAINING_FACES)
    for face in (*typefaces.HELD_OUT_FACES, *typefaces.TRAINING_FACES):
        assert (typefaces.font_dir() / face).is_file()


@pytest.mark.slow  # spawns two processes
def test_processes_give_the_bytes_of_one(monkeypatch):
    images = np.stack([DIGIT, np.roll(DIGIT, 3, axis=1), 255 - DIGIT, np.rot90(DIGIT)])
    families = ("speckle_noise", "zigzag", "stain")
    alone = suite.degrade_all(images, 7, families, workers=1)
    pixels, readable = suite.preprocess(alone.reshape(-1, *alone.shape[2:]), workers=1)
    monkeypatch.setattr(suite, "ONE_PROCESS_IMAGES", 0)  # small work goes on processes too
    shared = suite.degrade_all(images, 7, families, workers=2)
    assert shared.shape == (3, 4, degrade.SIDE, degrade.SIDE)
    assert shared.tobytes() == alone.tobytes()
    shared_pixels, shared_readable = suite.preprocess(shared.reshape(-1, *shared.shape[2:]), workers=2)
    assert shared_pixels.tobytes() == pixels.tobytes()
    assert shared_readable.tolist() == readable.tolist()


@pytest.mark.slow
def test_the_suite_is_written_whole_and_read_back_checked(small_curated, mnist_dir, tmp_path, capsys):
    handwriting_dir = tmp_path / "handwriting"
    handwriting.write(handwriting_dir, per_style=1, seed=5)
    out = tmp_path / "suite"
    argv = ["degrade", "--curated-dir", small_curated, "--handwriting-dir", handwriting_dir]
    argv += ["--data-dir", mnist_dir, "--output-dir", out, "--per-family", 12, "--per-typeface", 1]
    code, printed_out, err = run(capsys, *argv)
    known = sum(e["kind"] == "known" for e in handwriting.load_manifest(handwriting_dir)["samples"])
    printed = len(typefaces.HELD_OUT_FACES) * 2 * 3
    total = len(suite.FAMILIES) * (12 + known + printed)
    assert (code, err) == (0, "")
    assert printed_out == (
        f"wrote {total} images to {out}: 31 families (clean included) of 12 MNIST test, "
        f"{known} handwriting and {printed} printed digits\n"
    )
    manifest, arrays = suite.load(out)
    assert manifest["images_per_family"] == {"mnist-test": 12, "handwriting": known, "typeface": printed}
    assert len(arrays["labels"]) == total
    assert sorted(set(arrays["labels"].tolist())) == [0, 5, 8]
    assert json.loads((out / "manifest.json").read_text())["families"] == list(suite.FAMILIES)
    first = (out / suite.SUITE_FILE).read_bytes()
    assert run(capsys, *argv)[0] == 0
    assert (out / suite.SUITE_FILE).read_bytes() == first  # the same seed gives the same bytes
    names = sorted(p.name for p in out.iterdir() if p.name != ownership.MARK)
    older = {"step": "digits-data degrade", "files": names}  # an older version's record: names only
    (out / ownership.MARK).write_text(json.dumps(older))
    assert run(capsys, *argv)[:2] == (0, printed_out)  # its own manifest proves every file
    assert json.loads((out / ownership.MARK).read_text())["format"] == ownership.RECORD_FORMAT
    (out / ownership.MARK).write_text(json.dumps(older))
    flip_byte(out / suite.SHEET_NAME)  # a sheet edited since: nothing proves it any more
    code, _, err = run(capsys, *argv)
    assert code == 1
    assert "holds files changed since `digits-data degrade` wrote them (sheet.png)" in err
    flip_byte(out / suite.SUITE_FILE)
    with pytest.raises(DigitsError, match=r"was changed after it was written: run `make suite`"):
        suite.load(out)
    with pytest.raises(DigitsError, match="is missing or not a degradation suite's"):
        suite.load(tmp_path)
    assert run(capsys, "degrade", "--per-family", 0)[:2] == (2, "")
