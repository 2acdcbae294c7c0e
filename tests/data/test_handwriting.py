"""The generated handwriting set: determinism, balanced styles, valid labels, decodable images, CLI."""

import hashlib
import json
import shutil
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from digits_core import atomic, ownership
from digits_core.contract import CLASSES
from digits_core.errors import DigitsError
from digits_core.images import load_image
from digits_data import cli, handwriting
from digits_data.dataset import sha256_file

from helpers import HANDWRITING_EDITS, cli_runner, edited_handwriting

PER_STYLE = 3
N_GLYPHS = {"known": 8, "other_digit": 15, "letter": 28}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("hw") / "set"
    manifest = handwriting.write(out, per_style=PER_STYLE, seed=5)
    return out, manifest


run = cli_runner(cli.COMMANDS, "digits-data")


@pytest.mark.slow
def test_same_seed_gives_the_same_bytes_and_more_samples_keep_the_first_ones(generated):
    out, manifest = generated
    again = handwriting.generate(per_style=1, seed=5)
    assert len(again) == sum(N_GLYPHS.values())
    written = {e["file"]: e["sha256"] for e in manifest["samples"]}
    for sample in again:  # the first sample of every glyph, drawn again in a run asking for fewer
        assert hashlib.sha256(sample.image).hexdigest() == written[sample.file]
        assert sample.image == (out / sample.file).read_bytes()


@pytest.mark.slow
def test_another_seed_gives_other_images(generated):
    _, manifest = generated
    written = {e["sha256"] for e in manifest["samples"]}
    other = handwriting.generate(per_style=1, seed=6)
    assert not {hashlib.sha256(s.image).hexdigest() for s in other} & written


def test_manifest_records_every_file_with_its_sha256(generated):
    out, manifest = generated
    assert manifest["format"] == handwriting.FORMAT
    assert (manifest["seed"], manifest["per_style"]) == (5, PER_STYLE)
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert handwriting.load_manifest(out) == manifest
    files = {p.name for p in out.iterdir()}
    assert files == {e["file"] for e in manifest["samples"]} | {"manifest.json", "sheet.png", ownership.MARK}
    assert ownership.written_by(out) == {
        "step": "digits-data handwriting",
        "files": sorted(files - {ownership.MARK}),
    }
    for entry in manifest["samples"][:: len(manifest["samples"]) // 10]:
        assert atomic.Path(out / entry["file"]).stat().st_size > 0
        assert entry["sha256"] == sha256_file(out / entry["file"])


def test_counts_per_kind_and_balanced_styles(generated):
    _, manifest = generated
    samples = manifest["samples"]
    assert manifest["counts"] == {k: n * PER_STYLE for k, n in N_GLYPHS.items()}
    assert Counter(s["kind"] for s in samples) == manifest["counts"]
    assert len(handwriting.GLYPHS) == sum(N_GLYPHS.values())
    by_glyph = Counter(s["file"].rsplit("-", 1)[0] for s in samples)
    assert set(by_glyph.values()) == {PER_STYLE}
    # Within each glyph, every level of an axis appears PER_STYLE // levels times, or once more.
    for glyph in by_glyph:
        mine = [s for s in samples if s["file"].rsplit("-", 1)[0] == glyph]
        for axis, levels in handwriting.AXES.items():
            counts = Counter(s["styles"][axis] for s in mine)
            assert set(counts) <= set(levels)
            assert max(counts.values()) - min(counts.get(level, 0) for level in levels) <= 1
    assert Counter(s["styles"]["cursive"] for s in samples if s["kind"] == "known") == {
        "print": 5 * PER_STYLE,
        "cursive": 3 * PER_STYLE,
    }
    assert {s["styles"]["glyph"] for s in samples if s["label"] == "8"} == {
        "two-loops",
        "figure-eight",
        "s-and-back",
    }


def test_labels_are_valid_and_files_unique(generated):
    _, manifest = generated
    samples = manifest["samples"]
    known = {str(d) for d in CLASSES}
    for s in samples:
        if s["kind"] == "known":
            assert s["label"] in known
        elif s["kind"] == "other_digit":
            assert s["label"] in set("0123456789") - known
        else:
            assert s["kind"] == "letter"
            assert s["label"].isalpha()
            assert len(s["label"]) == 1
    assert {s["label"] for s in samples if s["label"].isdigit()} == set("0123456789")
    assert len({s["file"].lower() for s in samples}) == len(samples)  # safe on case-blind disks


@pytest.mark.slow
def test_every_image_decodes_and_passes_the_product_preprocessing(generated):
    out, manifest = generated
    formats = Counter()
    for entry in manifest["samples"]:
        with Image.open(out / entry["file"]) as image:
            image.load()
            formats[image.format] += 1
            assert 96 <= image.width == image.height <= 160
            assert image.mode in ("L", "RGB")
        pixels = load_image(out / entry["file"])
        assert pixels.shape == (28, 28)
        assert pixels.max() == pytest.approx(1.0)
        assert 12 <= int((pixels > 0.5).sum()) <= 300, entry["file"]  # a character, not a speck or a blot
    assert set(formats) == {"PNG", "JPEG"}
    assert formats["JPEG"] > len(manifest["samples"]) // 8


def test_both_polarities_reach_the_model_as_white_on_black(generated):
    out, manifest = generated
    for polarity in handwriting.POLARITIES:
        entry = next(e for e in manifest["samples"] if e["styles"]["polarity"] == polarity)
        with Image.open(out / entry["file"]) as image:
            gray = np.asarray(image.convert("L"), dtype=np.float32)
        border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
        assert (np.median(border) > 128) == (polarity == "dark-on-light")
        pixels = load_image(out / entry["file"])
        assert np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]).max() == 0.0


@pytest.mark.slow
def test_cli_writes_a_set_in_place_of_an_older_one(capsys, generated, tmp_path):
    out = tmp_path / "hw"
    shutil.copytree(generated[0], out)
    code, stdout, _ = run(capsys, "handwriting", "--output-dir", str(out), "--per-style", "1", "--seed", "3")
    assert code == 0
    assert stdout == f"wrote 51 images to {out}: 8 of 0/5/8, 15 other digits, 28 letters\n"
    manifest = handwriting.load_manifest(out)
    assert (manifest["seed"], manifest["per_style"]) == (3, 1)
    assert len(list(out.iterdir())) == 51 + 3  # the older, larger set is gone whole
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hw.lock", "hw"]  # no scratch or old folder left


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--per-style", "0"], "--per-style must be between 1 and 10000, got 0"),
        (["--per-style", "two"], "--per-style must be a whole number, got 'two'"),
        (["--seed", "-1"], "--seed must be between 0 and 4294967295, got -1"),
        (
            ["--per-styles", "2"],
            "digits-data handwriting has no option --per-styles: see `digits-data handwriting --help`",
        ),
    ],
)
def test_cli_refuses_bad_flags(capsys, tmp_path, argv, message):
    code, _, err = run(capsys, "handwriting", "--output-dir", str(tmp_path / "hw"), *argv)
    assert code == 2
    assert err == f"digits-data: error: {message}\n"
    assert not (tmp_path / "hw").exists()


@pytest.mark.slow
def test_cli_refuses_to_replace_a_folder_that_is_not_a_set(capsys, tmp_path):
    keep = tmp_path / "photos"
    keep.mkdir()
    (keep / "mine.jpg").write_bytes(b"precious")
    code, _, err = run(capsys, "handwriting", "--output-dir", str(keep), "--per-style", "1")
    assert code == 1
    assert err == (
        f"digits-data: error: {keep} holds files `digits-data handwriting` did not write (mine.jpg), "
        "so it will not replace it: move them out or choose a new or empty output folder\n"
    )
    assert [p.name for p in keep.iterdir()] == ["mine.jpg"]


def files_of(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_cli_refuses_a_folder_of_scans_named_like_samples(capsys, tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "digit-5-from-bank-form.png").write_bytes(b"a scan")
    (scans / "lower-left-corner.png").write_bytes(b"another")
    code, out, err = run(capsys, "handwriting", "--output-dir", str(scans), "--per-style", "1")
    assert (code, out) == (1, "")
    assert err == (
        f"digits-data: error: {scans} holds files `digits-data handwriting` did not write "
        "(digit-5-from-bank-form.png, lower-left-corner.png), so it will not replace it: move them out "
        "or choose a new or empty output folder\n"
    )
    assert files_of(scans) == {"digit-5-from-bank-form.png": b"a scan", "lower-left-corner.png": b"another"}


@pytest.mark.slow
def test_a_set_is_not_replaced_once_a_user_added_a_file_to_it(capsys, generated, tmp_path):
    out = shutil.copytree(generated[0], tmp_path / "hw")
    (out / "digit-5-from-bank-form.png").write_bytes(b"a scan")
    before = files_of(out)
    code, _, err = run(capsys, "handwriting", "--output-dir", str(out), "--per-style", "1")
    assert code == 1
    assert err.endswith(
        "did not write (digit-5-from-bank-form.png), so it will not replace it: move them out "
        "or choose a new or empty output folder\n"
    )
    assert files_of(out) == before


@pytest.mark.slow
def test_a_set_of_an_older_version_is_replaced_if_its_manifest_lists_all_of_it(capsys, generated, tmp_path):
    out = shutil.copytree(generated[0], tmp_path / "hw")
    (out / ownership.MARK).unlink()  # older versions wrote no record
    code, _, _ = run(capsys, "handwriting", "--output-dir", str(out), "--per-style", "1", "--seed", "3")
    assert code == 0
    assert handwriting.load_manifest(out)["seed"] == 3
    assert ownership.written_by(out)["step"] == "digits-data handwriting"
    (out / ownership.MARK).unlink()
    (out / "lower-left-corner.png").write_bytes(b"a scan")
    code, _, err = run(capsys, "handwriting", "--output-dir", str(out), "--per-style", "1")
    assert code == 1
    assert "did not write (lower-left-corner.png)" in err
    assert (out / "lower-left-corner.png").read_bytes() == b"a scan"


def test_load_manifest_names_a_missing_or_altered_file(generated, tmp_path):
    out, manifest = generated
    with pytest.raises(DigitsError) as missing:
        handwriting.load_manifest(tmp_path)
    assert str(missing.value) == (
        f"{tmp_path / 'manifest.json'} does not exist: "
        "run `make handwriting` (or `digits-data handwriting`) to create it"
    )
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    victim = copy / manifest["samples"][0]["file"]
    victim.write_bytes(victim.read_bytes()[:-1])
    with pytest.raises(DigitsError, match="does not match its sha256"):
        handwriting.load_manifest(copy)


def expected_problem(samples: list[dict], edit: str) -> str:
    """What load_manifest says about the manifest of ``samples`` after the named edit."""
    first_five = next(i for i, s in enumerate(samples) if s["label"] == "5")
    return {
        "label x": f"has sample 0 ({samples[0]['file']!r}) of kind 'known' where its label 'x' is 'letter'",
        "fives relabelled 7": (
            f"has sample {first_five} ({samples[first_five]['file']!r}) of kind 'known' "
            "where its label '7' is 'other_digit'"
        ),
        "samples empty": "lists no samples",
        "samples missing": "has no 'samples' list",
        "samples a dict": "has no 'samples' list",
        "styles missing": (
            f"has sample 3 ({samples[3]['file']!r}) without every style tag "
            "(glyph, cursive, slant, pen, size, polarity)"
        ),
        "unknown kind": (
            f"has sample {len(samples) - 1} ({samples[-1]['file']!r}) of kind 'scribble' "
            f"where its label {samples[-1]['label']!r} is 'letter'"
        ),
    }[edit]


@pytest.mark.parametrize("edit", list(HANDWRITING_EDITS))
def test_an_edited_manifest_is_refused_with_what_is_wrong(generated, tmp_path, edit):
    out, manifest = generated
    copy = edited_handwriting(out, tmp_path / "set", HANDWRITING_EDITS[edit])
    with pytest.raises(DigitsError) as refused:
        handwriting.load_manifest(copy)
    assert str(refused.value) == (
        f"{copy / 'manifest.json'} {expected_problem(manifest['samples'], edit)}: it was edited; "
        f"delete {copy} and run `make handwriting` (or `digits-data handwriting`)"
    )


def test_a_sample_file_outside_the_set_is_refused(generated, tmp_path):
    out, _ = generated
    escaping = edited_handwriting(out, tmp_path / "set", lambda m: m["samples"][1].update(file="../x.png"))
    with pytest.raises(DigitsError, match=r"without a plain file name and its sha256: it was"):
        handwriting.load_manifest(escaping)


def test_a_sample_listed_twice_is_refused(generated, tmp_path):
    out, manifest = generated
    first = manifest["samples"][0]
    # The second entry names the first's file: one image would be counted twice, another dropped.
    twice = edited_handwriting(out, tmp_path / "set", lambda m: m["samples"].__setitem__(1, dict(first)))
    with pytest.raises(DigitsError) as refused:
        handwriting.load_manifest(twice)
    assert str(refused.value) == (
        f"{twice / 'manifest.json'} has sample 1 ({first['file']!r}) that is listed twice (each file is one "
        f"sample): it was edited; delete {twice} and run `make handwriting` (or `digits-data handwriting`)"
    )


@pytest.mark.parametrize("forgery", ["names, as the previous version wrote", "link to a real record"])
@pytest.mark.slow
def test_a_record_naming_a_users_scans_gets_none_of_them_deleted(capsys, generated, tmp_path, forgery):
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "digit-5-from-bank-form.png").write_bytes(b"a scan")
    if forgery == "link to a real record":
        (scans / ownership.MARK).symlink_to(generated[0] / ownership.MARK)
        problem = "is a link, pipe or other non-regular file, which proves nothing"
    else:
        record = {"step": "digits-data handwriting", "files": ["digit-5-from-bank-form.png"]}
        (scans / ownership.MARK).write_text(json.dumps(record))
        problem = "has a record of an older version, which lists names but not contents"
    before = files_of(scans)
    code, out, err = run(capsys, "handwriting", "--output-dir", str(scans), "--per-style", "1")
    assert (code, out) == (1, "")
    assert err.startswith("digits-data: error: ")
    assert err.count("\n") == 1
    assert problem in err
    assert files_of(scans) == before


@pytest.mark.slow
def test_a_set_whose_sample_was_replaced_by_a_users_file_is_not_replaced(capsys, generated, tmp_path):
    out = shutil.copytree(generated[0], tmp_path / "hw")
    victim = out / generated[1]["samples"][0]["file"]
    victim.write_bytes(b"my own scan, saved under that name")
    before = files_of(out)
    code, _, err = run(capsys, "handwriting", "--output-dir", str(out), "--per-style", "1")
    assert code == 1
    assert err == (
        f"digits-data: error: {out} holds files changed since `digits-data handwriting` wrote them "
        f"({victim.name}), so it will not replace it: move them out (or delete them if they are not "
        "needed) or choose another output folder\n"
    )
    assert files_of(out) == before
