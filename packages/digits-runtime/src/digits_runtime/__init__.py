"""digits-runtime: torch-free inference for the digits model on onnxruntime."""

from digits_runtime.predictor import Prediction, Predictor

__all__ = ["Prediction", "Predictor"]
