"""Time `digits-train fit` against a bare PyTorch loop doing the same work, in one run.

Both run as fresh processes on the same curated data with the default recipe: same networks
(every member of an ensemble), epochs, batch size, augmentation (elastic warp included),
class-weighted loss with the outliers (typeset letters and digits included) trained to the
reject class or pushed to uniform, as the config says, AdamW with the one-cycle schedule, an
exponential moving average of the weights, and a validation pass per epoch; the bare loop has no
Lightning (no callbacks, logging, metrics objects or checkpoints). The bare loop runs exactly as
many epochs as the fit did.

    .venv/bin/python benchmarks/bench_train.py [--curated-dir artifacts/curated]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent

BARE_LOOP = r"""
import math, sys, time
import torch, torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel
from digits_data import dataset
from digits_train.augment import Jitter
from digits_train.config import CLASS_WEIGHT_POWER, FitConfig
from digits_train.data import OUTLIER, class_weights, outlier_tensors, tensors
from digits_train.fit import ema_with_warmup
from digits_train.model import build_network
from digits_train.typeset import typeset
torch.set_num_threads(2)
torch.manual_seed(0)
curated, epochs = sys.argv[1], int(sys.argv[2])
config = FitConfig()
batch = config.batch_size
manifest = dataset.load_manifest(curated)
labels = manifest["classes"]
x, y = tensors(dataset.load_split(curated, "train"), labels)
ox, oy = outlier_tensors(dataset.load_split(curated, "other_train"))
lx = torch.from_numpy(typeset(config.typeset)).unsqueeze(1)
xv, yv = tensors(dataset.load_split(curated, "val"), labels)
mean, std = manifest["normalization"]["mean"], manifest["normalization"]["std"]
weights = torch.tensor(class_weights(y, len(labels), CLASS_WEIGHT_POWER[config.class_weighting]))
x, y = torch.cat([x, ox, lx]), torch.cat([y, oy, torch.full((len(lx),), OUTLIER)])
reject = config.outlier_target == "reject"  # one more output, the reject class
if reject:
    weights = F.pad(weights, (0, 1), value=1.0)
outputs = len(labels) + reject
nets = torch.nn.ModuleList(build_network(outputs, config.network) for _ in range(config.members))
opt = torch.optim.AdamW(nets.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
steps = epochs * -(-len(x) // batch)
schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.learning_rate, total_steps=steps)
ema = AveragedModel(nets, avg_fn=ema_with_warmup(config.ema_decay), use_buffers=True)
jitter, gen = Jitter(elastic=config.elastic), torch.Generator().manual_seed(0)
start = time.perf_counter()
for epoch in range(epochs):
    nets.train()
    order = torch.randperm(len(x), generator=gen)
    for i in range(0, len(x), batch):
        idx = order[i : i + batch]
        pixels, target = x[idx], y[idx]
        known = target != OUTLIER
        pixels = (jitter(pixels, gen) - mean) / std
        loss = 0
        for net in nets:
            logits = net(pixels)
            loss = loss + F.cross_entropy(logits[known], target[known], weight=weights.float())
            if reject:
                rejected = torch.full((int((~known).sum()),), len(labels))
                loss = loss + config.outlier_weight * F.cross_entropy(logits[~known], rejected)
            else:
                uniform = -F.log_softmax(logits[~known], 1).mean(1) - math.log(len(labels))
                loss = loss + config.outlier_weight * uniform.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        ema.update_parameters(nets)
    ema.eval()
    with torch.no_grad():
        scaled = (xv - mean) / std
        logits = torch.stack([net(scaled)[:, : len(labels)] for net in ema.module]).mean(0)
        val = (logits.argmax(1) == yv).float().mean()
print(f"{time.perf_counter() - start:.2f}")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curated-dir", default="artifacts/curated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run(
            [str(BIN / "digits-train"), "fit", "--curated-dir", args.curated_dir, "--output-dir", out],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        fit_process = time.perf_counter() - start
        summary = json.loads((Path(out) / "summary.json").read_text())
    epochs = summary["epochs_run"]
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", BARE_LOOP, args.curated_dir, str(epochs)],
        check=True,
        capture_output=True,
        text=True,
    )
    bare_process = time.perf_counter() - start
    bare_loop = float(done.stdout.strip())
    print(f"epochs: {epochs} (default recipe, validation every epoch)")
    fit_seconds = summary["wall_time_seconds"]
    print(f"digits-train fit: {fit_process:6.1f} s whole process, {fit_seconds:6.1f} s in Trainer.fit")
    print(f"bare PyTorch loop: {bare_process:6.1f} s whole process, {bare_loop:6.1f} s in the loop")
    print(f"ratio (whole process): {fit_process / bare_process:.2f}  (target <= 1.5)")
    print(f"ratio (training only): {fit_seconds / bare_loop:.2f}")


if __name__ == "__main__":
    main()
