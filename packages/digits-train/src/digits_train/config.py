"""Training configuration: defaults live here, validated on creation, written next to the results."""

from dataclasses import asdict, dataclass

from digits_core.checks import check_bool, check_choice, check_float, check_int
from digits_core.errors import ConfigError

MAX_EPOCHS = 20
DEFAULT_SEED = 11122025
"""The default fit's seed: initial weights, batch order and augmentation draws (not curation's)."""
NO_CHECKPOINT = "checkpoint {path} does not exist: run `make train` (or `digits-train fit`)"
"""What export says of a checkpoint path that names no file (before loading torch, from the command line)."""
NETWORKS = ("deep", "compact", "reference")
SCHEDULES = ("onecycle", "plateau")
SELECTIONS = ("final", "best")
OUTLIER_TARGETS = ("reject", "uniform")
CLASS_WEIGHT_POWER = {"sqrt": 0.5, "inverse": 1.0}
"""Class weighting name -> the power of the inverse class frequency it weighs each class by."""


@dataclass(frozen=True)
class FitConfig:
    """Everything that determines a training run besides the data.

    The defaults are the recipe that did best on validation data across seeds 1-5
    (benchmarks/seeds.py: fewest validation errors, lowest validation log-loss, most of other_val
    refused): strong augmentation with an elastic warp, two networks averaged in one model, AdamW
    with a one-cycle schedule, an exponential moving average of the weights, and the final
    (averaged) weights of the last epoch. Each of the 13 epochs takes every known digit and a
    fresh draw of ``outliers_per_epoch`` outliers (0: all of them every epoch), 41% of the
    images that all 9,000 outliers for 20 epochs took; from the second epoch on,
    ``hard_outliers`` of that draw are the ones the model then takes most for a digit
    (digits_train.data.OutlierSubsetSampler; 0: all at random). Selecting the "best" epoch on
    validation macro-F1 is unreliable here: on 600 images with 36 fives it saturates at 1.0
    within a few epochs, so it can keep an undertrained network.

    ``schedule="plateau"``, ``early_stopping=True`` and ``selection="best"`` give the older recipe
    (ReduceLROnPlateau, EarlyStopping after ``min_epochs``, best checkpoint on validation macro-F1,
    ties broken by lower loss). ``class_weighting`` is ``sqrt`` (square root of the inverse class
    frequency) or ``inverse``. ``ema_decay=0`` turns weight averaging off.
    ``outlier_weight`` weighs the loss on the outliers (the curated other digits, and ``typeset``
    letters and digits typeset in Pillow's font, the training typefaces and handwriting fonts, then
    drawn along Hershey strokes, digits_train.typeset), which teaches the model to
    say an image is none of its classes; 0 trains without them. With ``outlier_target="reject"``
    each network has one more output, a reject class the outliers are trained to, and the model
    outputs each digit's logit minus the reject logit: its probabilities over the digits are those
    of the digits' outputs, and the energy score (the logsumexp of those logits) is the log-odds of
    a digit against the reject class. ``"uniform"`` pushes the outliers towards a uniform output
    over the digits instead.
    ``members`` > 1 trains that many networks side by side, each on its own loss, and keeps
    their mean logits: an ensemble in one model. ``elastic`` is the peak displacement of the
    augmentation's smooth random warp, as a fraction of the half-width (0: affine maps only).
    ``degrees`` is the largest rotation of the augmentation. ``degrade`` is the share of training
    images given one degradation each (digits_train.degrade: noise, blur, hollow outlines, marks
    across the digit, stains, coarse pixels, haze); ``junk`` the share of outliers replaced by
    images that are no digit (scribbles, noise, two digits side by side, part of one); ``printed`` the number
    of digits set in the training typefaces (digits_data.typefaces) added to the known digits.
    ``limit_train_batches`` exists for quick runs in tests (1.0 = all batches).
    """

    seed: int = DEFAULT_SEED
    epochs: int = 13
    learning_rate: float = 5e-3
    weight_decay: float = 1e-4
    batch_size: int = 64
    num_workers: int = 0
    augment: bool = True
    elastic: float = 0.08
    degrees: float = 20.0
    degrade: float = 0.5
    junk: float = 0.25
    network: str = "deep"
    members: int = 2
    class_weighting: str = "sqrt"
    schedule: str = "onecycle"
    ema_decay: float = 0.995
    selection: str = "final"
    early_stopping: bool = False
    outlier_weight: float = 1.0
    outlier_target: str = "reject"
    typeset: int = 4374  # every character in every pen of every font and Hershey face once (3726: the fonts')
    printed: int = 600
    outliers_per_epoch: int = 3400
    hard_outliers: float = 0.0
    min_epochs: int = 15
    early_stopping_patience: int = 3
    lr_patience: int = 2
    lr_factor: float = 0.5
    limit_train_batches: float = 1.0

    def __post_init__(self) -> None:
        check_int("seed", self.seed, 0, 2**32 - 1)
        check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        check_int("min_epochs", self.min_epochs, 0, MAX_EPOCHS)
        check_float("learning_rate", self.learning_rate, 0.0, 1.0)
        check_float("weight_decay", self.weight_decay, 0.0, 1.0, open_interval=False)
        check_int("batch_size", self.batch_size, 1, 4096)
        check_int("num_workers", self.num_workers, 0, 64)
        check_bool("augment", self.augment)
        check_float("elastic", self.elastic, 0.0, 0.5, open_interval=False)
        check_float("degrees", self.degrees, 0.0, 45.0, open_interval=False)
        check_float("degrade", self.degrade, 0.0, 1.0, open_interval=False)
        check_float("junk", self.junk, 0.0, 1.0, open_interval=False)
        check_choice("network", self.network, NETWORKS)
        check_int("members", self.members, 1, 8)
        check_choice("class_weighting", self.class_weighting, tuple(CLASS_WEIGHT_POWER))
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("selection", self.selection, SELECTIONS)
        check_float("ema_decay", self.ema_decay, 0.0, 1.0, open_interval=False)
        if self.ema_decay == 1.0:
            raise ConfigError(
                "ema_decay must be below 1 (1 would never move the average), got 1.0", "ema_decay"
            )
        check_bool("early_stopping", self.early_stopping)
        check_float("outlier_weight", self.outlier_weight, 0.0, 10.0, open_interval=False)
        check_choice("outlier_target", self.outlier_target, OUTLIER_TARGETS)
        check_int("typeset", self.typeset, 0, 100_000)
        check_int("printed", self.printed, 0, 100_000)
        check_int("outliers_per_epoch", self.outliers_per_epoch, 0, 1_000_000)
        check_float("hard_outliers", self.hard_outliers, 0.0, 1.0, open_interval=False)
        if self.hard_outliers and not (self.outliers_per_epoch and self.outlier_weight):
            raise ConfigError(
                "hard_outliers picks among the outliers drawn each epoch: give it with "
                "outliers_per_epoch and outlier_weight above 0, or leave it at 0",
                "hard_outliers",
                "outliers_per_epoch",
                "outlier_weight",
            )
        check_int("early_stopping_patience", self.early_stopping_patience, 1, MAX_EPOCHS)
        check_int("lr_patience", self.lr_patience, 0, MAX_EPOCHS)
        check_float("lr_factor", self.lr_factor, 0.0, 1.0)
        check_float("limit_train_batches", self.limit_train_batches, 0.0, 1.0, open_interval=False)
        # A short run (e.g. --epochs 2) simply runs all its epochs.
        object.__setattr__(self, "min_epochs", min(self.min_epochs, self.epochs))

    def to_dict(self) -> dict:
        """Return the configuration as a JSON-ready dict."""
        return asdict(self)
