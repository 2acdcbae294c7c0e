"""Turn images into model input: MNIST-style 28x28 float32 pixels in [0, 1], white ink on black."""

import numpy as np


def pixels_from_uint8(images: np.ndarray) -> np.ndarray:
    """Scale uint8 MNIST-style pixels (0-255) to float32 in [0, 1], the model's input range."""
    return np.asarray(images, dtype=np.float32) / np.float32(255.0)
