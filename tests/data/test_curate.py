"""Curation and the split format: exact counts, determinism by checksum, no overlap, validation."""

import json

import numpy as np
import pytest

from digits_data import curate, dataset, mnist
from digits_data.contract import SPLITS
from digits_data.errors import DigitsError, UsageError

DEFAULT_SIZES = {
    "eval": {"0": 240, "5": 60, "8": 700},
    "val": {"0": 144, "5": 36, "8": 420},
    "train": {"0": 816, "5": 204, "8": 2380},
}


@pytest.fixture(scope="module")
def full(mnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    return out, curate.curate(mnist_dir, out)


def test_split_sizes_are_two_stage():
    assert curate.split_sizes(1200, 0.2, 0.15) == {"train": 816, "val": 144, "eval": 240}
    assert curate.split_sizes(300, 0.2, 0.15) == {"train": 204, "val": 36, "eval": 60}
    assert curate.split_sizes(3500, 0.2, 0.15) == {"train": 2380, "val": 420, "eval": 700}


def test_default_curation_has_exact_counts_and_traceable_images(full, mnist_dir):
    out, manifest = full
    assert manifest["classes"] == [0, 5, 8]
    assert {name: s["counts"] for name, s in manifest["splits"].items()} == DEFAULT_SIZES
    assert {name: s["n"] for name, s in manifest["splits"].items()} == {
        "train": 3400,
        "val": 600,
        "eval": 1000,
    }
    raw = mnist.raw_dir(mnist_dir)
    images = mnist.read_images(raw / mnist.TRAIN_IMAGES)
    labels = mnist.read_labels(raw / mnist.TRAIN_LABELS)
    for name in SPLITS:
        split = dataset.load_split(out, name)
        assert split.indices.tolist() == manifest["splits"][name]["mnist_indices"]
        np.testing.assert_array_equal(split.images, images[split.indices])
        np.testing.assert_array_equal(split.labels, labels[split.indices])
        assert np.all(np.diff(split.indices) > 0)


def test_no_image_is_in_two_splits(full):
    _, manifest = full
    assert curate.check_overlap(manifest) == []
    all_indices = [i for s in manifest["splits"].values() for i in s["mnist_indices"]]
    assert len(all_indices) == len(set(all_indices)) == 5000
    broken = json.loads(json.dumps(manifest))
    broken["splits"]["val"]["mnist_indices"].append(broken["splits"]["eval"]["mnist_indices"][0])
    assert curate.check_overlap(broken) == ["val and eval share 1 images"]


def test_normalization_comes_from_train_only(full):
    out, manifest = full
    train = dataset.load_split(out, "train").images / 255.0
    assert manifest["normalization"]["mean"] == pytest.approx(train.mean(), abs=1e-8)
    assert manifest["normalization"]["std"] == pytest.approx(train.std(), abs=1e-8)


def test_same_seed_gives_identical_bytes_other_seed_differs(full, mnist_dir, tmp_path, tmp_path_factory):
    out, _ = full
    # The manifest records where MNIST lies relative to it: same depth, same bytes.
    again = tmp_path_factory.mktemp("again")
    curate.curate(mnist_dir, again)
    for name in [*(f"{s}.npz" for s in SPLITS), "manifest.json"]:
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    other = tmp_path / "other"
    manifest = curate.curate(mnist_dir, other, seed=7)
    assert {name: s["counts"] for name, s in manifest["splits"].items()} == DEFAULT_SIZES
    assert curate.check_overlap(manifest) == []
    assert dataset.fingerprint(other) != dataset.fingerprint(out)
    assert dataset.sha256_file(other / "eval.npz") != dataset.sha256_file(out / "eval.npz")


def test_manifest_records_checksums_and_sources(full, mnist_dir):
    out, manifest = full
    for name in SPLITS:
        assert manifest["splits"][name]["sha256"] == dataset.sha256_file(out / f"{name}.npz")
    assert manifest["source"]["files"][mnist.TRAIN_IMAGES]["md5"] == mnist.MD5[mnist.TRAIN_IMAGES]
    assert manifest["source"]["files"] == {
        name: {"md5": mnist.MD5[name], "sha256": sha} for name, sha in mnist.verify(mnist_dir).items()
    }
    assert (out / manifest["source"]["raw_dir"]).resolve() == mnist.raw_dir(mnist_dir).resolve()
    assert dataset.fingerprint(out) == dataset.sha256_file(out / "manifest.json")


def test_class_set_and_counts_are_parameters(mnist_dir, tmp_path):
    manifest = curate.curate(mnist_dir, tmp_path, class_counts={3: 50, 7: 20}, eval_ratio=0.3, val_ratio=0.5)
    assert manifest["classes"] == [3, 7]
    assert manifest["splits"]["eval"]["counts"] == {"3": 15, "7": 6}
    assert manifest["splits"]["val"]["counts"] == {"3": 18, "7": 7}
    assert manifest["splits"]["train"]["counts"] == {"3": 17, "7": 7}


def test_test_split_is_the_mnist_test_set_digits(full):
    out, _ = full
    test = dataset.load_test_split(out)
    assert len(test) == 2846
    assert np.bincount(test.labels, minlength=9)[[0, 5, 8]].tolist() == [980, 892, 974]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"eval_ratio": 0.0}, r"--eval-ratio must be in \(0.0, 1.0\), got 0.0"),
        ({"val_ratio": 1.5}, r"--val-ratio must be in \(0.0, 1.0\), got 1.5"),
        ({"eval_ratio": 0.6, "val_ratio": 0.4}, "must be below 1 to leave training data"),
        ({"seed": -1}, "--seed must be between 0 and 4294967295, got -1"),
        ({"class_counts": {0: 10}}, "needs at least two digits"),
        ({"class_counts": {0: 10, 12: 5}}, "keys must be digits 0-9, got 12"),
        ({"class_counts": {0: 10, 5: 0}}, "for digit 5 must be a positive whole number, got 0"),
    ],
)
def test_bad_configuration_is_refused(overrides, message):
    with pytest.raises(UsageError, match=message):
        curate.CurationConfig(**overrides)


def test_counts_beyond_mnist_and_empty_splits_are_refused(mnist_dir, tmp_path):
    with pytest.raises(UsageError, match="digit 5: asked for 6000 images but MNIST training holds 5421"):
        curate.curate(mnist_dir, tmp_path / "a", class_counts={0: 10, 5: 6000})
    with pytest.raises(UsageError, match="digit 5: 2 images leave the val, eval split empty"):
        curate.curate(mnist_dir, tmp_path / "b", class_counts={0: 100, 5: 2})
    assert not (tmp_path / "a").exists()
    assert not (tmp_path / "b").exists()


def test_tampered_split_is_detected(full, tmp_path):
    out, _ = full
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in [*(f"{s}.npz" for s in SPLITS), "manifest.json"]:
        (copy / name).write_bytes((out / name).read_bytes())
    data = bytearray((copy / "val.npz").read_bytes())
    data[-100] ^= 0xFF
    (copy / "val.npz").write_bytes(bytes(data))
    with pytest.raises(
        DigitsError, match=r"val.npz does not match the sha256 in .*manifest.json.*make curate"
    ):
        dataset.load_manifest(copy)
    with pytest.raises(DigitsError, match=r"val.npz does not match the sha256 in its manifest"):
        dataset.load_split(copy, "val")
    (copy / "manifest.json").unlink()
    with pytest.raises(
        DigitsError, match=r"manifest.json is missing, so .* is incomplete: run `make curate`"
    ):
        dataset.load_manifest(copy)
