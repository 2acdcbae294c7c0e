"""digits-core: what every digits package agrees on.

The model contract, errors, value checks, image preprocessing, the refusal rule, atomic writes,
command-line conduct and the commands' entry points, the step timer and the artifacts' default
paths. numpy, pillow and fire only.
"""

from digits_core.contract import CLASSES, IMAGE_SIZE
from digits_core.errors import DigitsError, UsageError

__all__ = ["CLASSES", "IMAGE_SIZE", "DigitsError", "UsageError"]
