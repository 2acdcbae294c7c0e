"""A real, short training run on the small curation, shared by the training tests.

The run is trained once per test run, whatever the number of test processes, and the tests that
use it run first, so that one process trains while the other runs the rest of the suite. Tests
that use the trained run are in the slow tier."""

import fcntl
import os
import pickle
from pathlib import Path

import pytest

from digits_train.config import FitConfig

QUICK = FitConfig(epochs=2, typeset=200, printed=60, outliers_per_epoch=300, hard_outliers=0.5)
"""The default recipe, two epochs and a tenth of its generated images: every part of it still runs
(printed digits, typeset outliers, a fresh draw of outliers each epoch, the ensemble, averaging),
in a second or two instead of tens of seconds; with the option that draws the second epoch's
hardest outliers, so that it runs too."""
THREADS = 1
"""torch threads of the tests' fits: two test processes share the cores, and more threads than
free cores only wait for each other. The weights depend on the threads, so every fit whose
weights a test compares uses the same number."""


@pytest.fixture(scope="session")
def trained(small_curated: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Fit QUICK on the small curation and export the best checkpoint, once per run.

    The first test process to need it trains, under a lock in the run's folder; the others wait
    for it and read what it wrote. The run is keyed by nothing but the curation's content, which
    every process curates alike.
    """
    from digits_train.export import export  # here: torch and Lightning take seconds to import
    from digits_train.fit import fit

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the run's folder
    out, record = root / "trained", root / "trained.pickle"
    with open(root / "trained.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.exists():
            summary = fit(small_curated, out, QUICK, threads=THREADS)
            result = export(out / "best.ckpt", out / "model.onnx")
            run = {"dir": out, "summary": summary, "export": result, "config": QUICK, "threads": THREADS}
            record.write_bytes(pickle.dumps(run))
    return pickle.loads(record.read_bytes())


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the tests that use the trained run in the slow tier, and first in the run.

    First, so that pytest-xdist hands them all to one test process at the start (it sends each
    process a run of consecutive tests): that one trains while the other runs the rest.
    """
    uses = {item: "trained" in getattr(item, "fixturenames", ()) for item in items}
    for item, using in uses.items():
        if using:
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: not uses[item])  # stable: the order within each part is kept
