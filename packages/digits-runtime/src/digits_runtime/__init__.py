"""digits-runtime: torch-free inference for the digits model on onnxruntime."""

from typing import Any

from digits_core.errors import DigitsError
from digits_runtime.predictor import Prediction, Predictor

__all__ = ["DigitsError", "Prediction", "Predictor", "__version__"]


def __getattr__(name: str) -> Any:
    """``__version__``, read from the installed package's metadata (pyproject.toml's version) on
    first use: importing importlib.metadata would cost every import of this package tens of ms."""
    if name == "__version__":
        from importlib.metadata import version

        return version("digits-runtime")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
