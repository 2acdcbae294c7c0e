"""Where the seconds of `digits-train fit` go: Lightning's hooks and torch's operators, in one run.

Runs the real `fit` (default recipe unless `--set FIELD=VALUE`) for a few epochs under Lightning's
SimpleProfiler (time per hook: the training step, backward, the optimizer, callbacks such as the
weight average, the loaders, validation) and torch.profiler (self CPU time per operator, then
summed by what the operator does: convolutions forward and backward, augmentation, BatchNorm,
pooling, the optimizer and the weight average, the loss). The shares are what to look at; the
profiler's own overhead inflates small operators, so absolute seconds read high.

Then it times one training step of the networks alone (forward, backward, AdamW) per image, in
the default memory layout and channels-last, as CPU seconds of one thread, alternating: a
measure that other work on the machine hardly moves.

    .venv/bin/python benchmarks/profile_train.py [--curated-dir artifacts/curated] [--epochs 2]
"""

import argparse
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
from lightning.pytorch.profilers import SimpleProfiler
from seeds import parse_override

from digits_train.config import FitConfig
from digits_train.fit import configure_torch, fit
from digits_train.model import build_network

# Operator name pattern -> what it is part of; the first match wins, the rest is "other".
CATEGORIES = (
    (r"convolution_backward|mkldnn_convolution_backward", "convolution, backward"),
    (r"convolution|mkldnn_convolution|conv2d", "convolution, forward"),
    (r"grid_sampler|affine_grid|upsample_bicubic|interpolate", "augmentation: warp (grid sample, field)"),
    (r"max_pool2d_with_indices_backward", "max pooling, backward"),
    (r"max_pool2d|max_pool", "max pooling (network and pen width), forward"),
    (r"batch_norm", "BatchNorm, forward and backward"),
    (r"_foreach|addcdiv|lerp|sqrt", "optimizer and weight average (foreach updates)"),
    (r"nll_loss|log_softmax|cross_entropy", "loss"),
    (r"threshold_backward|relu", "ReLU"),
    (r"addmm|\bmm\b|linear", "linear layer"),
    (r"dropout|bernoulli", "dropout"),
    (r"copy_|clone|cat|stack|index|to\b|contiguous|empty|zero_|fill_", "copies, indexing, allocation"),
)


def category(name: str) -> str:
    """The part of training an operator belongs to (see CATEGORIES)."""
    for pattern, label in CATEGORIES:
        if re.search(pattern, name):
            return label
    return "other"


def step_cost(layout: torch.memory_format, batch: int, members: int, images: int = 4096) -> float:
    """CPU microseconds per image of forward, backward and AdamW for ``members`` networks, one thread."""
    networks = torch.nn.ModuleList(build_network(4) for _ in range(members)).to(memory_format=layout)
    optimizer = torch.optim.AdamW(networks.parameters())
    pixels = torch.rand(batch, 1, 28, 28).contiguous(memory_format=layout)
    targets = torch.randint(0, 4, (batch,))
    start = time.process_time()
    for _ in range(images // batch):
        loss = sum(torch.nn.functional.cross_entropy(net(pixels), targets) for net in networks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (time.process_time() - start) / (images // batch * batch) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--curated-dir", default="artifacts/curated")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--top", type=int, default=20, help="operators listed one by one")
    args = parser.parse_args()
    config = FitConfig(**{**dict(parse_override(o) for o in args.set), "epochs": args.epochs})
    with tempfile.TemporaryDirectory() as scratch:
        hooks = SimpleProfiler(dirpath=scratch, filename="hooks")
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as ops:
            summary = fit(args.curated_dir, Path(scratch) / "fit", config, profiler=hooks)
        hook_table = next(Path(scratch).glob("*hooks*")).read_text()
    print(f"fit: {summary['wall_time_seconds']:.1f} s for {args.epochs} epochs under both profilers\n")
    print("Lightning hooks (SimpleProfiler), the largest:")
    rows = [line for line in hook_table.splitlines() if line.startswith("|  ") and "Action" not in line]
    for line in rows[: args.top]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        print(f"  {cells[0][:60]:<60} {cells[2]:>8} calls {cells[3]:>9} s {cells[4]:>7} %")
    events = [e for e in ops.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    by_category: dict[str, float] = defaultdict(float)
    for event in events:
        by_category[category(event.key)] += event.self_cpu_time_total
    print("\ntorch operators, self CPU time by what they do:")
    for label, micros in sorted(by_category.items(), key=lambda kv: -kv[1]):
        print(f"  {label:<52} {micros / 1e6:8.2f} s {100 * micros / total:6.1f} %")
    print("\ntorch operators, the largest:")
    for event in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.top]:
        seconds, share = event.self_cpu_time_total / 1e6, 100 * event.self_cpu_time_total / total
        print(f"  {event.key[:52]:<52} {event.count:>8} calls {seconds:8.2f} s {share:6.1f} %")

    configure_torch(1)
    config = FitConfig()
    print(f"\none training step of {config.members} networks, CPU time of one thread per image (best of 3):")
    layouts = {"default (NCHW)": torch.contiguous_format, "channels-last (NHWC)": torch.channels_last}
    costs = {name: [] for name in layouts}
    for _ in range(3):
        for name, layout in layouts.items():
            costs[name].append(step_cost(layout, config.batch_size, config.members))
    for name, values in costs.items():
        print(f"  {name:<22} {min(values):6.0f} us")
    ratio = min(costs["default (NCHW)"]) / min(costs["channels-last (NHWC)"])
    print(f"  channels-last is {ratio:.2f}x as fast")


if __name__ == "__main__":
    main()
