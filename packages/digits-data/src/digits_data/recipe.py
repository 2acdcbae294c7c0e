"""The default curation recipe: which images `digits-data curate` draws, and how it splits them.

Changing a value here changes the curated data (and so its fingerprint), not the model contract.
"""

DEFAULT_CLASS_COUNTS: dict[int, int] = {8: 3500, 0: 1200, 5: 300}
"""How many images of each digit the default curation draws from the MNIST training set."""

DEFAULT_SEED = 11122025
DEFAULT_EVAL_RATIO = 0.2
DEFAULT_VAL_RATIO = 0.15

DEFAULT_OTHER_TRAIN_PER_DIGIT = 1000
"""Images of each other digit the default curation draws into ``other_train``."""
DEFAULT_OTHER_VAL_PER_DIGIT = 100
"""Images of each other digit the default curation draws into ``other_val``."""
