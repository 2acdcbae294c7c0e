"""digits-train: a Lightning CNN for the curated digits, trained on CPU and exported to ONNX."""
