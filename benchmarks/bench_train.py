"""Time `digits-train fit` against the previous default recipe and against a bare PyTorch loop, in one run.

Three fresh processes on the same curated data, one after the other (`--rounds N` alternates them
N times, and each line reports its fastest run):
- the previous default: `digits-train fit` as it was at commit `--previous` (no degradations,
  printed digits or junk), its sources taken with `git archive` and run on this environment's
  torch and Lightning;
- the default recipe of this checkout;
- a bare PyTorch loop doing the default recipe's work: same networks (every member of an
  ensemble), epochs, batch size, outliers drawn per epoch (the hardest among them scored as
  training scores them), augmentation (elastic warp included),
  degradations and junk, printed digits, memory layout, class-weighted loss with the outliers
  (typeset letters and digits included)
  trained to the reject class or pushed to uniform, as the config says, AdamW with the one-cycle
  schedule, an exponential moving average of the weights, and a validation pass per epoch; it has
  no Lightning (no callbacks, logging, metrics objects or checkpoints).

    .venv/bin/python benchmarks/bench_train.py [--curated-dir artifacts/curated] [--rounds 1]
    .venv/bin/python benchmarks/bench_train.py --variant hard_outliers=0.5   # a fourth run: an option changed
"""

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

PREVIOUS = "5f3e09a"
"""The last commit whose default recipe had not seen degraded digits, printed digits or junk."""

BARE_LOOP = r"""
import math, sys, time
import torch, torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel
from digits_data import dataset, parallel
from digits_train.augment import Jitter
from digits_train.degrade import Degrade, junk
from digits_train.config import CLASS_WEIGHT_POWER, FitConfig
from digits_train.data import OUTLIER, OutlierSubsetSampler, class_weights, outlier_tensors, tensors
from digits_train.fit import configure_torch, ema_with_warmup
from digits_train.model import build_network
from digits_train.typeset import render
configure_torch(2)
torch.manual_seed(0)
curated, epochs = sys.argv[1], int(sys.argv[2])
config = FitConfig()
batch = config.batch_size
manifest = dataset.load_manifest(curated)
labels = manifest["classes"]
x, y = tensors(dataset.load_split(curated, "train"), labels)
ox, oy = outlier_tensors(dataset.load_split(curated, "other_train"))
characters, (px, py) = render(config.typeset, config.printed, labels, config.seed, parallel.cores())
lx = torch.from_numpy(characters).unsqueeze(1)
xv, yv = tensors(dataset.load_split(curated, "val"), labels)
mean, std = manifest["normalization"]["mean"], manifest["normalization"]["std"]
weights = torch.tensor(class_weights(y, len(labels), CLASS_WEIGHT_POWER[config.class_weighting]))
x, y = torch.cat([x, torch.from_numpy(px).unsqueeze(1)]), torch.cat([y, torch.from_numpy(py)])
known = len(y)
x, y = torch.cat([x, ox, lx]), torch.cat([y, oy, torch.full((len(lx),), OUTLIER)])
reject = config.outlier_target == "reject"  # one more output, the reject class
if reject:
    weights = F.pad(weights, (0, 1), value=1.0)
outputs = len(labels) + reject
nets = torch.nn.ModuleList(build_network(outputs, config.network) for _ in range(config.members))
nets.to(memory_format=torch.channels_last)
gen = torch.Generator().manual_seed(0)
per_epoch = config.outliers_per_epoch or len(y) - known
sampler = OutlierSubsetSampler(known, len(y) - known, per_epoch, gen, config.hard_outliers)


def scores(positions):  # the largest logit of the networks' mean, as DigitsClassifier.digit_scores
    nets.eval()
    with torch.no_grad():
        parts = []
        for i in range(0, len(positions), 1024):
            z = torch.stack([net((x[positions[i : i + 1024]] - mean) / std) for net in nets]).mean(0)
            parts.append((z[:, :-1] - z[:, -1:] if reject else z).amax(1))
    nets.train()
    return torch.cat(parts)


sampler.scorer = scores
opt = torch.optim.AdamW(nets.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
steps = epochs * -(-len(sampler) // batch)
schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.learning_rate, total_steps=steps)
ema = AveragedModel(nets, avg_fn=ema_with_warmup(config.ema_decay), use_buffers=True)
jitter = Jitter(degrees=config.degrees, elastic=config.elastic)
degrade = Degrade(config.degrade)
start = time.perf_counter()
for epoch in range(epochs):
    nets.train()
    order = torch.tensor(list(sampler))
    for i in range(0, len(order), batch):
        idx = order[i : i + batch]
        pixels, target = x[idx], y[idx]
        known = target != OUTLIER
        pixels = jitter(pixels, gen)
        swap = ~known & (torch.rand(len(target), generator=gen) < config.junk)
        pixels[swap] = junk(pixels[torch.roll(swap, 1)], gen)
        pixels = degrade(pixels, gen)
        pixels = ((pixels - mean) / std).contiguous(memory_format=torch.channels_last)
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


def previous_sources(revision: str, into: Path) -> str:
    """Unpack digits-data and digits-train as they were at ``revision``; return their PYTHONPATH."""
    archive = into / "previous.tar"
    packages = ["packages/digits-data/src", "packages/digits-train/src"]
    repo = Path(__file__).resolve().parents[1]
    subprocess.run(
        ["git", "-C", str(repo), "archive", "--output", str(archive), revision, *packages], check=True
    )
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return os.pathsep.join(str(into / p) for p in packages)


def timed_fit(
    curated_dir: str, pythonpath: str | None = None, options: tuple[str, ...] = ()
) -> tuple[float, dict]:
    """Run `digits-train fit` in a fresh process (``pythonpath``: other sources; ``options``: more
    command-line options); return the whole process's seconds and its summary."""
    env = {**os.environ, "PYTHONPATH": pythonpath} if pythonpath else None
    with tempfile.TemporaryDirectory() as scratch:
        out = str(Path(scratch) / "fit")  # a folder inside: fit's lock file goes beside it, and with it
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "digits_train",
                "fit",
                "--curated-dir",
                curated_dir,
                "--output-dir",
                out,
                *options,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            env=env,
        )
        seconds = time.perf_counter() - start
        return seconds, json.loads((Path(out) / "summary.json").read_text())


def timed_bare_loop(curated_dir: str, epochs: int) -> tuple[float, float]:
    """Run the bare loop in a fresh process; return the whole process's and the loop's seconds."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", BARE_LOOP, curated_dir, str(epochs)],
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - start, float(done.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curated-dir", default="artifacts/curated")
    parser.add_argument("--previous", default=PREVIOUS, help="commit of the previous default recipe")
    parser.add_argument("--rounds", type=int, default=1, help="alternate the three runs this many times")
    parser.add_argument(
        "--variant",
        metavar="FIELD=VALUE",
        help="also time the default with this fit option changed (e.g. hard_outliers=0.5), in each round",
    )
    args = parser.parse_args()
    options: tuple[str, ...] = ()
    if args.variant:
        field, _, value = args.variant.partition("=")
        if not (field and value):
            parser.error(f"--variant takes FIELD=VALUE, got {args.variant!r}")
        options = (f"--{field.replace('_', '-')}", value)
    with tempfile.TemporaryDirectory() as scratch:
        old_path = previous_sources(args.previous, Path(scratch))
        old, new, bare, variant = [], [], [], []
        for _ in range(args.rounds):
            old.append(timed_fit(args.curated_dir, old_path))
            new.append(timed_fit(args.curated_dir))
            bare.append(timed_bare_loop(args.curated_dir, new[-1][1]["epochs_run"]))
            if args.variant:
                variant.append(timed_fit(args.curated_dir, options=options))
    (old_seconds, old_summary), (new_seconds, new_summary) = min(old), min(new)
    bare_seconds, bare_loop = min(bare)
    for name, seconds, summary in (
        (f"previous default ({args.previous})", old_seconds, old_summary),
        ("default recipe", new_seconds, new_summary),
    ):
        in_fit = summary["wall_time_seconds"]
        print(f"{name}: {summary['epochs_run']} epochs, validation every epoch")
        print(f"  digits-train fit: {seconds:6.1f} s whole process, {in_fit:6.1f} s in Trainer.fit")
    print(f"  bare PyTorch loop: {bare_seconds:6.1f} s whole process, {bare_loop:6.1f} s in the loop")
    print(f"default / previous (whole process): {new_seconds / old_seconds:.3f}  (target <= 1.3)")
    print(f"fit / bare loop (whole process): {new_seconds / bare_seconds:.2f}  (target <= 1.5)")
    print(f"fit / bare loop (training only): {new_summary['wall_time_seconds'] / bare_loop:.2f}")
    if variant:
        seconds, summary = min(variant)
        in_fit = summary["wall_time_seconds"]
        print(f"default with {args.variant}: {seconds:6.1f} s whole process, {in_fit:6.1f} s in Trainer.fit")
        print(f"  / default: {seconds / new_seconds:.3f}, / previous: {seconds / old_seconds:.3f}")


if __name__ == "__main__":
    main()
