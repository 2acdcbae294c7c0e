"""A real, short training run on the small curation, shared by the training tests."""

from pathlib import Path

import pytest

from digits_train.config import FitConfig
from digits_train.export import export
from digits_train.fit import fit

QUICK = FitConfig(epochs=2)


@pytest.fixture(scope="session")
def trained(small_curated: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Fit two epochs on the small curation and export the best checkpoint."""
    out = tmp_path_factory.mktemp("train")
    summary = fit(small_curated, out, QUICK)
    result = export(out / "best.ckpt", out / "model.onnx")
    return {"dir": out, "summary": summary, "export": result}
