"""The network and its LightningModule: class-weighted loss, AdamW, LR schedule, validation metrics."""

import math
import platform

import lightning as L
import torch
import torch.nn.functional as F
import torchmetrics
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassRecall
from torchmetrics.wrappers import ClasswiseWrapper

from digits_train.augment import Jitter
from digits_train.config import FitConfig
from digits_train.data import OUTLIER
from digits_train.degrade import Degrade, junk


def conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    """3x3 convolution (no bias: BatchNorm follows), BatchNorm, ReLU."""
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


def build_network(num_classes: int, name: str = "deep") -> nn.Sequential:
    """The CNN, by name; each maps (B, 1, 28, 28) -> (B, num_classes).

    ``reference``: conv block 1->16, pool, conv block 16->32, pool, linear 1568->3.
    ``compact`` adds a third conv block 32->32 on the 7x7 maps and dropout before the linear
    layer: it costs little (the extra block runs at 7x7) and generalizes better, as
    benchmarks/compare_networks.py measures on validation and held-out data. ``deep`` (default)
    adds a fourth such block: it refuses more letters it never saw and is surer of the
    validation digits (docs/training.md).
    """
    layers = [*conv_block(1, 16), nn.MaxPool2d(2), *conv_block(16, 32), nn.MaxPool2d(2)]  # (B, 32, 7, 7)
    if name == "compact":
        layers += [*conv_block(32, 32), nn.Flatten(), nn.Dropout(0.3)]
    elif name == "deep":
        layers += [*conv_block(32, 32), *conv_block(32, 32), nn.Flatten(), nn.Dropout(0.3)]
    else:
        layers += [nn.Flatten()]
    return nn.Sequential(*layers, nn.Linear(32 * 7 * 7, num_classes))


class Ensemble(nn.Module):
    """Networks of the same kind, each trained on its own loss; the output is the mean of their logits.

    Their errors differ with their initialization, so the mean makes fewer of them, and one graph
    holds them all: every consumer of the exported model gets the ensemble.
    """

    def __init__(self, num_classes: int, name: str, members: int) -> None:
        super().__init__()
        self.members = nn.ModuleList(build_network(num_classes, name) for _ in range(members))

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's logits (M, B, num_classes) for normalized pixels x (B, 1, 28, 28)."""
        return torch.stack([member(x) for member in self.members])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.member_logits(x).mean(0)


class DigitsClassifier(L.LightningModule):
    """Maps pixels in [0, 1] (B, 1, 28, 28), white ink on black, to logits over ``labels``.

    The train-split normalization is part of the module, so the exported graph takes raw
    pixels and nothing outside the model file has to remember the statistics. The other
    arguments are saved with every checkpoint: what export and the runtime need to know.
    """

    def __init__(
        self,
        labels: list[int],
        mean: float,
        std: float,
        class_weights: list[float],
        fingerprint: str,
        config: dict,
        curated_dir: str,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        # Checkpoints written before the reject class existed name no target: theirs was uniform.
        self.config = FitConfig(**{"outlier_target": "uniform", **config})
        self.reject = self.config.outlier_target == "reject"
        outputs = len(labels) + self.reject  # the reject class is the last output
        self.network = (
            build_network(outputs, self.config.network)
            if self.config.members == 1
            else Ensemble(outputs, self.config.network, self.config.members)
        )
        self.network.to(memory_format=torch.channels_last)  # see training_step
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        self.register_buffer("class_weights", torch.tensor(class_weights, dtype=torch.float32))
        self.jitter = Jitter(degrees=self.config.degrees, elastic=self.config.elastic)
        self.degrade = Degrade(self.config.degrade)
        # Augmentation draws from its own generator so that runs are reproducible.
        self.generator = torch.Generator().manual_seed(self.config.seed)
        n = len(labels)
        self.val_scores = torchmetrics.MetricCollection(
            {
                "val_macro_f1": MulticlassF1Score(n, average="macro"),
                "val_accuracy": MulticlassAccuracy(n, average="micro"),
                "val_recall": ClasswiseWrapper(
                    MulticlassRecall(n, average="none"), labels=[str(d) for d in labels], prefix="val_recall_"
                ),
            },
            # Shared compute groups leave the class-wise recall without updates after the first
            # reset (torchmetrics 1.9); three small metrics cost nothing to update separately.
            compute_groups=False,
        )
        self.val_loss = torchmetrics.MeanMetric()
        self.val_metrics: dict[str, float] = {}

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Return logits (B, n_classes) for pixels (B, 1, 28, 28) in [0, 1]."""
        logits = self.network((pixels - self.mean) / self.std)
        if self.reject:
            # A shift common to the digits leaves their softmax as it is; it makes the energy
            # score log(sum of the digits' odds against the reject class).
            return logits[:, :-1] - logits[:, -1:]
        return logits

    @torch.no_grad()
    def digit_scores(self, pixels: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """How much the model, as it is now, takes each image (N, 1, 28, 28) for a digit: its
        largest logit (N,), the refusal rule's ``max_logit``. Training mode is kept as it was."""
        training = self.training
        self.eval()
        try:
            batches = [pixels[i : i + batch_size] for i in range(0, len(pixels), batch_size)]
            return torch.cat([self(batch).amax(1) for batch in batches])
        finally:
            self.train(training)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Class-weighted cross-entropy on the digits, outliers (target OUTLIER) pushed to uniform or
        to the reject class; for an ensemble, the sum of each network's own loss."""
        pixels, targets = batch
        known = targets != OUTLIER
        if self.config.augment:
            pixels = self.jitter(pixels, self.generator)
            if self.config.junk > 0 and not known.all():
                # Some outliers become junk made from this batch: scribbles, noise, pairs, parts.
                swap = ~known & (torch.rand(len(targets), generator=self.generator) < self.config.junk)
                pixels = pixels.clone()
                pixels[swap] = junk(pixels[torch.roll(swap, 1)], self.generator)
            pixels = self.degrade(pixels, self.generator)
        # Channels-last (NHWC) tensors take oneDNN's fast CPU kernels for convolution, BatchNorm and
        # pooling: a training step costs about two thirds of the default layout's.
        x = ((pixels - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        if isinstance(self.network, Ensemble):
            loss = sum(self.loss(logits, targets, known) for logits in self.network.member_logits(x))
        else:
            loss = self.loss(self.network(x), targets, known)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(targets))
        return loss

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """Class-weighted cross-entropy on the known digits plus the outlier term, for one network."""
        # A batch may hold outliers only (the last, short one): its digit loss is then 0, not NaN.
        # Cross-entropy wants a weight per output; no digit's target is the reject class, so its
        # weight (1) is never used.
        weights = F.pad(self.class_weights, (0, 1), value=1.0) if self.reject else self.class_weights
        loss = (
            F.cross_entropy(logits[known], targets[known], weight=weights)
            if known.any()
            else logits.new_zeros(())
        )
        if known.all():
            return loss
        if self.reject:
            rejected = torch.full_like(targets[~known], logits.shape[1] - 1)
            return loss + self.config.outlier_weight * F.cross_entropy(logits[~known], rejected)
        # Cross-entropy to the uniform distribution, minus its minimum log(C): 0 when uniform.
        log_probs = F.log_softmax(logits[~known], dim=1)
        uniform = -log_probs.mean(1) - math.log(logits.shape[1])
        return loss + self.config.outlier_weight * uniform.mean()

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        pixels, targets = batch
        logits = self(pixels)
        # Weighted CE is a weighted mean over the batch; weight it by the batch's total class weight.
        weights = self.class_weights[targets]
        loss = F.cross_entropy(logits, targets, weight=self.class_weights)
        self.val_loss.update(loss, weight=weights.sum())
        self.val_scores.update(logits, targets)

    def on_validation_epoch_end(self) -> None:
        loss = self.val_loss.compute()
        # val_macro_f1, val_accuracy and val_recall_<digit>, as the metrics file and the report name them.
        metrics = {"val_loss": loss, **self.val_scores.compute()}
        f1 = metrics["val_macro_f1"]
        # Checkpoint selection: highest macro-F1, ties broken by lower validation loss. One changed
        # prediction moves macro-F1 on the validation split by more than 1e-4, so a loss term
        # bounded by 1e-4 can only order checkpoints whose F1 is equal.
        metrics["lr"] = torch.tensor(self.trainer.optimizers[0].param_groups[0]["lr"])
        metrics["val_selection"] = f1 - 1e-5 * torch.clamp(loss, max=10.0)
        self.log_dict(metrics)
        self.val_metrics = {k: round(float(v), 6) for k, v in metrics.items() if k != "val_selection"}
        self.val_scores.reset()
        self.val_loss.reset()

    def configure_optimizers(self) -> dict:
        config = self.config
        optimizer = torch.optim.AdamW(
            self.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        if config.schedule == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=config.learning_rate, total_steps=self.trainer.estimated_stepping_batches
            )
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=config.lr_factor, patience=config.lr_patience
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "monitor": "val_macro_f1", "interval": "epoch"},
        }

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # The validation metrics of the epoch this checkpoint was taken at.
        checkpoint["digits_val_metrics"] = dict(self.val_metrics)
        # The same data and seed train other weights with other vector kernels (AVX2, AVX-512),
        # another number of threads or another maker's CPU with the same kernels (the math
        # libraries choose their own paths per CPU): say which computed these.
        checkpoint["digits_trained_on"] = {
            "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
            "cpu_vendor": cpu_vendor(),
            "torch_threads": torch.get_num_threads(),
        }


def cpu_vendor() -> str:
    """The CPU maker's id as Linux reports it (``GenuineIntel``, ``AuthenticAMD``), else the
    machine type (``arm64``, ``AMD64``) where /proc/cpuinfo does not say."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "vendor_id":
                    return value.strip()
    except OSError:
        pass
    return platform.machine()
