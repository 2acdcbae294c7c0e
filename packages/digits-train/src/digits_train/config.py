"""Training configuration: defaults live here, validated on creation, written next to the results."""

from dataclasses import asdict, dataclass

from digits_data.checks import check_bool, check_float, check_int
from digits_data.contract import DEFAULT_SEED
from digits_data.errors import UsageError

MAX_EPOCHS = 20
NETWORKS = ("compact", "reference")


@dataclass(frozen=True)
class FitConfig:
    """Everything that determines a training run besides the data.

    ``min_epochs`` keeps early stopping from ending a run before the learning-rate schedule has
    had a chance to act: validation macro-F1 on 600 images saturates within a few epochs, and a
    plateau there says little about how well the model has converged.
    ``limit_train_batches`` exists for quick runs in tests (1.0 = all batches).
    """

    seed: int = DEFAULT_SEED
    epochs: int = MAX_EPOCHS
    min_epochs: int = 15
    learning_rate: float = 1e-3
    batch_size: int = 32
    num_workers: int = 0
    augment: bool = True
    network: str = "compact"
    early_stopping_patience: int = 3
    lr_patience: int = 2
    lr_factor: float = 0.5
    limit_train_batches: float = 1.0

    def __post_init__(self) -> None:
        check_int("seed", self.seed, 0, 2**32 - 1)
        check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        check_int("min_epochs", self.min_epochs, 0, MAX_EPOCHS)
        check_float("learning_rate", self.learning_rate, 0.0, 1.0)
        check_int("batch_size", self.batch_size, 1, 4096)
        check_int("num_workers", self.num_workers, 0, 64)
        check_bool("augment", self.augment)
        if self.network not in NETWORKS:
            raise UsageError(f"--network must be one of {', '.join(NETWORKS)}, got {self.network!r}")
        check_int("early_stopping_patience", self.early_stopping_patience, 1, MAX_EPOCHS)
        check_int("lr_patience", self.lr_patience, 0, MAX_EPOCHS)
        check_float("lr_factor", self.lr_factor, 0.0, 1.0)
        check_float("limit_train_batches", self.limit_train_batches, 0.0, 1.0, open_interval=False)
        # A short run (e.g. --epochs 2) simply runs all its epochs.
        object.__setattr__(self, "min_epochs", min(self.min_epochs, self.epochs))

    def to_dict(self) -> dict:
        """Return the configuration as a JSON-ready dict."""
        return asdict(self)
