"""Fixtures shared by every package's tests: real MNIST (cached), a small real curation, a tiny model."""

import ast
import json
import os
import signal
import stat
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from digits_core import contract
from digits_core.errors import DigitsError
from digits_core.images import pixels_from_uint8
from digits_core.refusal import RefusalRule, choose_threshold, scores

if TYPE_CHECKING:
    import onnx

# torch's OpenMP threads spin while they wait for work. Two test processes share the cores, so a
# fit's spinning threads take them from the threads that work (a short fit ran ten times as long):
# waiting threads sleep instead, here and in every process the tests start. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# A shell starts a background job with Ctrl-C ignored, and every process inherits that: the tests
# that send a Ctrl-C to a command they start would see it ignored. A handler of Python's own is
# reset to the default in each started program, as a terminal would give it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts"
MNIST_CACHE = ARTIFACTS / "mnist"
SMALL_COUNTS = {0: 120, 5: 60, 8: 180}
_ARTIFACTS_BEFORE = pytest.StashKey[dict[str, tuple]]()


def artifacts_state(folder: Path) -> dict[str, tuple]:
    """Every entry under ``folder`` (links not followed): its kind, size, and times of change.

    The change time (ctime) moves with every write, rename or link to a file and cannot be set
    back, so two equal states mean nothing was created, changed or deleted in between.
    """
    state = {}
    for path in [folder, *folder.rglob("*")] if folder.exists() else []:
        info = path.lstat()
        kind = stat.S_IFMT(info.st_mode)
        times = () if stat.S_ISDIR(info.st_mode) else (info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        state[str(path.relative_to(folder))] = (kind, *times)
    return state


def state_changes(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    """What differs between two :func:`artifacts_state`: one line per created, changed or deleted entry."""
    return [
        f"{'created' if name not in before else 'deleted' if name not in after else 'changed'}: {name}"
        for name in sorted(before.keys() | after.keys())
        if before.get(name) != after.get(name)
    ]


def _controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")  # pytest-xdist's workers have it, the controller not


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Record artifacts/ before any test runs (once, in the process that runs or leads the tests)."""
    if _controller(session.config):
        session.config.stash[_ARTIFACTS_BEFORE] = artifacts_state(ARTIFACTS)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """Fail the run when a test created, changed or deleted anything under artifacts/."""
    before = session.config.stash.get(_ARTIFACTS_BEFORE, None)
    if before is None:
        return
    changes = state_changes(before, artifacts_state(ARTIFACTS))
    if changes:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("")  # ends the line of progress dots
            lines = [f"tests must write only in their temporary folders, but under {ARTIFACTS}:", *changes]
            for line in lines[:21] + (["..."] if len(lines) > 21 else []):
                reporter.write_line(line, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _wholly_slow(module: Path) -> bool:
    """Whether ``module`` puts every test it has in the slow tier: ``pytestmark = pytest.mark.slow``."""
    for node in ast.parse(module.read_bytes()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "pytestmark" for t in node.targets):
            return ast.unparse(node.value) == "pytest.mark.slow"
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Without the slow tier (``-m "not slow"``), do not import a module whose tests are all slow.

    Deselection comes only after a module is imported, and these modules import what takes the
    fast tier most of its time: Dask, pyarrow, Playwright, matplotlib, torch.
    """
    if config.getoption("markexpr") != "not slow" or collection_path.suffix != ".py":
        return None
    return True if collection_path.name.startswith("test_") and _wholly_slow(collection_path) else None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the slow tier first (after the tests that use the trained run: tests/train/conftest.py).

    `make test` runs pytest-xdist's worksteal: each process starts on one half of the list, and one
    that runs out takes over the unstarted half of the other's rest. Long tests started early are
    shared out that way; one started last would keep the other process waiting at the end.
    """
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real, verified MNIST, only ever read by tests.

    artifacts/mnist when it holds a verified copy; otherwise one fetched once per run (via the
    offline-capable sources) into a temporary folder that every test process of the run shares.
    """
    from digits_data import mnist  # here, not at the top: digits-core's tests run without digits-data

    base = tmp_path_factory.getbasetemp()
    try:
        mnist.verify(MNIST_CACHE)
        found = MNIST_CACHE
    except DigitsError:
        root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the run's folder
        found = root / "mnist"
        mnist.download(found, log=lambda message: None)  # a second process waits for the first
    # Curated folders made with tmp_path_factory sit in ``base``: `--split test` looks for MNIST
    # beside them, as it does beside artifacts/curated.
    beside = base / "mnist"
    if beside != found and not beside.exists():
        beside.symlink_to(found, target_is_directory=True)
    return found


@pytest.fixture(scope="session")
def small_curated(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real curation of MNIST with small counts: train 245, val 43, eval 72 images;
    other_train 140 and other_val 70 (20 and 10 of each other digit)."""
    from digits_data import curate

    out = tmp_path_factory.mktemp("curated")
    curate.curate(mnist_dir, out, class_counts=SMALL_COUNTS, other_train_per_digit=20, other_val_per_digit=10)
    return out


@pytest.fixture
def small_disk(tmp_path: Path):
    """Mount real file systems that fill up or refuse writes: ``small_disk(kib, read_only=False)``.

    tmpfs of the given size; needs the right to mount (root), so tests using it are skipped
    with the reason where it is missing. Unmounted at the end of the test.
    """
    mounted: list[Path] = []

    def mount(kib: int, read_only: bool = False) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        options = f"size={kib}k" + (",ro" if read_only else "")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small file system here: {done.stderr.strip() or 'mount failed'}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=True)


def contract_model(
    class_means: np.ndarray,
    labels: list[int],
    fingerprint: str,
    side: int = contract.IMAGE_SIZE,
    metadata: dict[str, str] | None = None,
) -> "onnx.ModelProto":
    """A nearest-class-mean classifier as an ONNX graph: logits_c = (x·m_c - |m_c|²/2) / 10, then softmax.

    Built with onnx.helper, without torch, so the runtime's tests run where only it is installed.
    ``metadata`` adds to (or replaces) the contract's metadata, e.g. a refusal rule.
    """
    import onnx  # only the runtime's and the report's tests need it
    from onnx import TensorProto, helper, numpy_helper

    weights = class_means.reshape(len(labels), -1).T.astype(np.float32)  # (side*side, C)
    bias = (-0.5 * (class_means.reshape(len(labels), -1) ** 2).sum(1)).astype(np.float32)
    nodes = [
        helper.make_node("Flatten", ["pixels"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "W", "b"], ["scaled"]),
        helper.make_node("Mul", ["scaled", "temperature"], [contract.LOGITS_NAME]),
        helper.make_node("Softmax", [contract.LOGITS_NAME], [contract.PROBABILITIES_NAME], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "nearest_class_mean",
        [helper.make_tensor_value_info(contract.INPUT_NAME, TensorProto.FLOAT, ["batch", 1, side, side])],
        [
            helper.make_tensor_value_info(contract.LOGITS_NAME, TensorProto.FLOAT, ["batch", len(labels)]),
            helper.make_tensor_value_info(
                contract.PROBABILITIES_NAME, TensorProto.FLOAT, ["batch", len(labels)]
            ),
        ],
        [
            numpy_helper.from_array(weights, "W"),
            numpy_helper.from_array(bias, "b"),
            numpy_helper.from_array(np.array(0.1, dtype=np.float32), "temperature"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    helper.set_model_props(
        model,
        {
            contract.META_LABELS: json.dumps(labels),
            contract.META_FINGERPRINT: fingerprint,
            **(metadata or {}),
        },
    )
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.fixture(scope="session")
def make_model():
    """The builder of contract-following ONNX models, for tests that need a variant."""
    return contract_model


def class_mean_logits(class_means: np.ndarray, images: np.ndarray) -> np.ndarray:
    """The logits of :func:`contract_model` computed with numpy in float64, for uint8 images."""
    flat_means = class_means.reshape(len(class_means), -1).astype(np.float64)
    pixels = pixels_from_uint8(images).reshape(len(images), -1).astype(np.float64)
    return (pixels @ flat_means.T - 0.5 * (flat_means**2).sum(1)) * 0.1


@pytest.fixture(scope="session")
def reference_logits():
    """numpy's own computation of a class-mean model's logits: (class_means, uint8 images) -> (N, 3)."""
    return class_mean_logits


@pytest.fixture(scope="session")
def class_means(small_curated: Path) -> np.ndarray:
    """Mean image (3, 28, 28) of each digit in the small curation's train split."""
    from digits_data import dataset

    train = dataset.load_split(small_curated, "train")
    pixels = pixels_from_uint8(train.images)
    return np.stack([pixels[train.labels == d].mean(0) for d in contract.CLASSES])


@pytest.fixture(scope="session")
def model_path(
    small_curated: Path, class_means: np.ndarray, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A contract-following ONNX model fitted (class means) on the small curation's train split."""
    from digits_data import dataset

    path = tmp_path_factory.mktemp("model") / "model.onnx"
    model = contract_model(class_means, list(contract.CLASSES), dataset.fingerprint(small_curated))
    path.write_bytes(model.SerializeToString())
    return path


@pytest.fixture(scope="session")
def refusing_model(
    small_curated: Path, class_means: np.ndarray, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, RefusalRule]:
    """The class-mean model with a refusal rule: energy, threshold keeping 90% of val digits."""
    from digits_data import dataset

    val = dataset.load_split(small_curated, "val")
    threshold = choose_threshold(scores(class_mean_logits(class_means, val.images), "energy"), 0.9)
    rule = RefusalRule("energy", threshold, 0.9, "val")
    path = tmp_path_factory.mktemp("refusing") / "model.onnx"
    model = contract_model(
        class_means,
        list(contract.CLASSES),
        dataset.fingerprint(small_curated),
        metadata={contract.META_REFUSAL: rule.to_json()},
    )
    path.write_bytes(model.SerializeToString())
    return path, rule
