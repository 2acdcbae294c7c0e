"""digits-data: verified MNIST, the curated 0/5/8 subset, and the shared image contract."""

from digits_data.contract import CLASSES, IMAGE_SIZE
from digits_data.errors import DigitsError, UsageError

__all__ = ["CLASSES", "IMAGE_SIZE", "DigitsError", "UsageError"]
