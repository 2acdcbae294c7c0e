"""Curation and the split format: exact counts, determinism by checksum, no overlap, validation."""

import json

import numpy as np
import pytest

from digits_core.contract import OUTLIER_SPLITS, SPLITS
from digits_core.errors import ConfigError, DigitsError, UsageError
from digits_data import curate, dataset, mnist

from helpers import flip_byte, tampered_copy

DEFAULT_SIZES = {
    "eval": {"0": 240, "5": 60, "8": 700},
    "val": {"0": 144, "5": 36, "8": 420},
    "train": {"0": 816, "5": 204, "8": 2380},
}
# The curated splits' bytes with the default seed, as they were before outlier splits existed.
DEFAULT_SHA256 = {
    "train": "6c0e3df32b38ef07110c44603b9acb5d1ea7edcd792a344f7ed90426f00eacbc",
    "val": "88a9d7f528b34a41e478bcf1322d4b91f406f028a92b0be62a57fecc9ebb946a",
    "eval": "c8fe44f0fc7ec7cb5a28854bdf2f5955d9899d5065df7f0a32f27dbf242996d0",
}
OTHER_DIGITS = [1, 2, 3, 4, 6, 7, 9]


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
    entries = [*manifest["splits"].values(), *manifest["outliers"]["splits"].values()]
    all_indices = [i for s in entries for i in s["mnist_indices"]]
    assert len(all_indices) == len(set(all_indices)) == 5000 + 7 * (1000 + 100)
    broken = json.loads(json.dumps(manifest))
    broken["outliers"]["splits"]["other_val"]["mnist_indices"].append(
        manifest["splits"]["eval"]["mnist_indices"][0]
    )
    assert curate.check_overlap(broken) == ["eval and other_val share 1 images"]
    broken = json.loads(json.dumps(manifest))
    broken["splits"]["val"]["mnist_indices"].append(broken["splits"]["eval"]["mnist_indices"][0])
    assert curate.check_overlap(broken) == ["val and eval share 1 images"]


def test_outlier_splits_keep_the_curated_bytes(full):
    out, manifest = full
    assert {name: s["sha256"] for name, s in manifest["splits"].items()} == DEFAULT_SHA256
    assert {name: dataset.sha256_file(out / f"{name}.npz") for name in SPLITS} == DEFAULT_SHA256


def test_outlier_splits_are_the_other_training_digits(full, mnist_dir):
    out, manifest = full
    outliers = manifest["outliers"]
    assert outliers["digits"] == OTHER_DIGITS
    assert outliers["per_digit"] == {"other_train": 1000, "other_val": 100}
    raw = mnist.raw_dir(mnist_dir)
    images = mnist.read_images(raw / mnist.TRAIN_IMAGES)
    labels = mnist.read_labels(raw / mnist.TRAIN_LABELS)
    for name, per_digit in outliers["per_digit"].items():
        entry = outliers["splits"][name]
        assert entry["n"] == 7 * per_digit
        assert entry["counts"] == {str(d): per_digit for d in OTHER_DIGITS}
        assert entry["sha256"] == dataset.sha256_file(out / f"{name}.npz")
        split = dataset.load_split(out, name)
        assert split.name == name
        assert split.indices.tolist() == entry["mnist_indices"]
        assert np.all(np.diff(split.indices) > 0)
        np.testing.assert_array_equal(split.images, images[split.indices])
        np.testing.assert_array_equal(split.labels, labels[split.indices])
        assert np.bincount(split.labels, minlength=10).tolist() == [
            0 if d in (0, 5, 8) else per_digit for d in range(10)
        ]


@pytest.mark.slow
def test_outlier_counts_are_in_the_fingerprint_not_in_the_curated_bytes(full, mnist_dir, tmp_path):
    out, _ = full
    manifest = curate.curate(mnist_dir, tmp_path, other_train_per_digit=20, other_val_per_digit=5)
    assert manifest["outliers"]["splits"]["other_train"]["counts"] == {str(d): 20 for d in OTHER_DIGITS}
    assert manifest["outliers"]["splits"]["other_val"]["n"] == 35
    assert {name: s["sha256"] for name, s in manifest["splits"].items()} == DEFAULT_SHA256
    assert dataset.fingerprint(tmp_path) != dataset.fingerprint(out)


def test_normalization_comes_from_train_only(full):
    out, manifest = full
    train = dataset.load_split(out, "train").images / 255.0
    assert manifest["normalization"]["mean"] == pytest.approx(train.mean(), abs=1e-8)
    assert manifest["normalization"]["std"] == pytest.approx(train.std(), abs=1e-8)


@pytest.mark.slow
def test_same_seed_gives_identical_bytes_other_seed_differs(full, mnist_dir, tmp_path, tmp_path_factory):
    out, _ = full
    # The manifest records where MNIST lies relative to it: same depth, same bytes.
    again = tmp_path_factory.mktemp("again")
    curate.curate(mnist_dir, again)
    for name in [*(f"{s}.npz" for s in (*SPLITS, *OUTLIER_SPLITS)), "manifest.json"]:
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    other = tmp_path / "other"
    manifest = curate.curate(mnist_dir, other, seed=7)
    assert {name: s["counts"] for name, s in manifest["splits"].items()} == DEFAULT_SIZES
    assert curate.check_overlap(manifest) == []
    assert dataset.fingerprint(other) != dataset.fingerprint(out)
    assert dataset.sha256_file(other / "eval.npz") != dataset.sha256_file(out / "eval.npz")
    assert dataset.sha256_file(other / "other_val.npz") != dataset.sha256_file(out / "other_val.npz")


def test_manifest_records_checksums_and_sources(full, mnist_dir):
    out, manifest = full
    for name in SPLITS:
        assert manifest["splits"][name]["sha256"] == dataset.sha256_file(out / f"{name}.npz")
    assert manifest["source"]["files"][mnist.TRAIN_IMAGES]["md5"] == mnist.MD5[mnist.TRAIN_IMAGES]
    assert manifest["source"]["files"] == {
        name: {"md5": mnist.MD5[name], "sha256": sha} for name, sha in mnist.verify(mnist_dir).items()
    }
    assert set(manifest["source"]) == {"files"}  # content facts only: no path to MNIST
    assert dataset.fingerprint(out) == dataset.sha256_file(out / "manifest.json")


@pytest.mark.slow
def test_class_set_and_counts_are_parameters(mnist_dir, tmp_path):
    manifest = curate.curate(mnist_dir, tmp_path, class_counts={3: 50, 7: 20}, eval_ratio=0.3, val_ratio=0.5)
    assert manifest["classes"] == [3, 7]
    assert manifest["splits"]["eval"]["counts"] == {"3": 15, "7": 6}
    assert manifest["splits"]["val"]["counts"] == {"3": 18, "7": 7}
    assert manifest["splits"]["train"]["counts"] == {"3": 17, "7": 7}
    assert manifest["outliers"]["digits"] == [0, 1, 2, 4, 5, 6, 8, 9]


def test_test_split_is_the_mnist_test_set_digits(full):
    out, _ = full
    test = dataset.load_test_split(out)
    assert len(test) == 2846
    assert np.bincount(test.labels, minlength=9)[[0, 5, 8]].tolist() == [980, 892, 974]


def test_other_split_is_the_mnist_test_sets_other_digits(full):
    out, _ = full
    other = dataset.load_test_split(out, other=True)
    assert other.name == "other"
    assert len(other) == 7154
    assert np.bincount(other.labels, minlength=10).tolist() == [
        0, 1135, 1032, 1010, 982, 0, 958, 1028, 0, 1009
    ]  # fmt: skip
    assert np.all(np.diff(other.indices) > 0)


@pytest.mark.parametrize(
    ("overrides", "message", "flags"),
    [
        ({"eval_ratio": 0.0}, "eval_ratio must be in (0.0, 1.0), got 0.0", "--eval-ratio must be in"),
        ({"val_ratio": 1.5}, "val_ratio must be in (0.0, 1.0), got 1.5", "--val-ratio must be in"),
        (
            {"eval_ratio": 0.6, "val_ratio": 0.4},
            "eval_ratio + val_ratio must be below 1 to leave training data, got 0.6 + 0.4",
            "--eval-ratio + --val-ratio must be below 1",
        ),
        ({"seed": -1}, "seed must be between 0 and 4294967295, got -1", "--seed must be between"),
        (
            {"class_counts": {0: 10}},
            "class_counts needs at least two distinct whole digits 0-9 as keys (fewer than two digits), "
            "e.g. '{8: 3500, 0: 1200, 5: 300}'",
            "--class-counts needs",
        ),
        (
            {"class_counts": {0: 10, 12: 5}},
            "class_counts needs at least two distinct whole digits 0-9 as keys "
            "(12 is not a whole digit 0-9), e.g. '{8: 3500, 0: 1200, 5: 300}'",
            "--class-counts needs",
        ),
        (
            {"class_counts": {0: 10, 5: 0}},
            "class_counts for digit 5 must be a positive whole number, got 0",
            "--class-counts for digit 5",
        ),
        (
            {"other_train_per_digit": 0},
            "other_train_per_digit must be at least 1, got 0",
            "--other-train-per-digit must be at least 1",
        ),
        (
            {"other_val_per_digit": 2.5},
            "other_val_per_digit must be a whole number, got 2.5",
            "--other-val-per-digit must be a whole",
        ),
    ],
)
def test_bad_configuration_is_refused_naming_the_field(overrides, message, flags):
    with pytest.raises(ConfigError) as caught:
        curate.CurationConfig(**overrides)
    assert (str(caught.value), caught.value.exit_code) == (message, 2)
    assert caught.value.with_flags().startswith(flags)
    assert caught.value.with_flags().count("--") == flags.count("--")


@pytest.mark.slow
def test_counts_beyond_mnist_and_empty_splits_are_refused(mnist_dir, tmp_path):
    with pytest.raises(UsageError, match="digit 5: asked for 6000 images but MNIST training holds 5421"):
        curate.curate(mnist_dir, tmp_path / "a", class_counts={0: 10, 5: 6000})
    with pytest.raises(UsageError, match="digit 5: 2 images leave the val, eval split empty"):
        curate.curate(mnist_dir, tmp_path / "b", class_counts={0: 100, 5: 2})
    with pytest.raises(
        UsageError, match="other digit 4: asked for 5900 images but MNIST training holds 5842"
    ):
        curate.curate(mnist_dir, tmp_path / "c", other_train_per_digit=5800)
    assert not (tmp_path / "a").exists()
    assert not (tmp_path / "b").exists()
    assert not (tmp_path / "c").exists()


def test_tampered_split_is_detected(full, tmp_path):
    out, _ = full
    copy = tampered_copy(out, tmp_path / "copy", "other_train.npz")
    with pytest.raises(DigitsError, match=r"other_train.npz does not match the sha256 in .*manifest.json"):
        dataset.load_manifest(copy)
    with pytest.raises(DigitsError, match=r"other_train.npz does not match the sha256 in its manifest"):
        dataset.load_split(copy, "other_train")
    (copy / "other_train.npz").write_bytes((out / "other_train.npz").read_bytes())
    flip_byte(copy / "val.npz")
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


def test_manifest_without_outliers_says_to_curate_again(full, tmp_path):
    out, manifest = full
    for name in SPLITS:
        (tmp_path / f"{name}.npz").write_bytes((out / f"{name}.npz").read_bytes())
    older = {key: value for key, value in manifest.items() if key != "outliers"}
    (tmp_path / "manifest.json").write_text(json.dumps(older))
    assert len(dataset.load_split(tmp_path, "eval")) == 1000
    with pytest.raises(DigitsError) as caught:
        dataset.load_split(tmp_path, "other_train")
    assert str(caught.value) == (
        f"{tmp_path / 'manifest.json'} has no entry for split 'other_train': "
        "run `make curate` (or `digits-data curate`) to create it"
    )
    with pytest.raises(
        UsageError, match="unknown split 'other': choose one of train, val, eval, other_train"
    ):
        dataset.load_split(tmp_path, "other")
