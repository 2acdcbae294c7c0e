"""`digits batch` on this machine's cores and on a two-worker Dask cluster, compared within one run.

Inputs, generated into a temporary folder from MNIST's test digits 0, 5 and 8:
- 20,000 28x28 PNGs (MNIST form: about 0.3 ms each to read and bring to MNIST form);
- 500 640x480 PNG "photos" of those digits (dark ink on grey paper, sensor noise: some 30 ms each);
- 100,000 inputs: the 20,000 PNGs hard-linked five times, for the driver's memory.

Each configuration is a whole `digits batch` process: `--engine local --workers 1`,
`--workers 2`, and `--engine dask` on a loopback cluster (`dask scheduler` and two `dask worker
--nthreads 1` processes, all on 127.0.0.1). Reported: images/s (the summary's, over the whole
command: listing, start-up and writing included), the driver's peak resident memory and that of
its workers (psutil, polled every 50 ms), the cores the workers got (their CPU seconds over the
command's: on a machine that others load, fewer than the workers asked for), and ratios within
this run. Every configuration must
write the same Parquet parts. Then the Dask engine on the PNGs at several partition sizes, which
is how the default (up to 1024) was chosen.

    .venv/bin/python benchmarks/bench_batch.py [--model M] [--data-dir artifacts/mnist] [--quick]
        [--before SRC]

``--before SRC`` also runs every configuration with another version of digits_runtime (its
``src`` folder, e.g. from ``git archive``), each right before this one on a cluster of its own,
and prints the throughput of this version over that one: a change measured within one run.

Without artifacts/model.onnx (and no --model), a class-mean model of MNIST's training 0/5/8 is
built with onnx.helper: its arithmetic is lighter than the trained network's, which answers
30,000 images/s here, against the 3,000 PNGs/s a core reads, so the ratios barely move.
"""

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
from bench_serve import photo_png  # the same "photos" as the server's benchmark
from PIL import Image

from digits_core import contract
from digits_data import mnist

DIGITS = Path(sys.executable).with_name("digits")
TARGETS = {"photos_w2_w1": 1.7, "pngs_w2_w1": 1.5, "dask_local": 0.8, "driver_mb": 500}


def class_mean_model(data_dir: Path, path: Path) -> Path:
    """A contract-following ONNX model: nearest class mean of MNIST's training 0/5/8 (no torch)."""
    from onnx import TensorProto, helper, numpy_helper

    raw = mnist.raw_dir(data_dir)
    images = mnist.read_images(raw / "train-images-idx3-ubyte").astype(np.float32) / 255
    labels = mnist.read_labels(raw / "train-labels-idx1-ubyte")
    means = np.stack([images[labels == d].mean(0).reshape(-1) for d in contract.CLASSES])
    nodes = [
        helper.make_node("Flatten", ["pixels"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "W", "b"], [contract.LOGITS_NAME]),
        helper.make_node("Softmax", [contract.LOGITS_NAME], [contract.PROBABILITIES_NAME], axis=1),
    ]
    size, n = contract.IMAGE_SIZE, len(contract.CLASSES)
    graph = helper.make_graph(
        nodes,
        "class_mean",
        [helper.make_tensor_value_info(contract.INPUT_NAME, TensorProto.FLOAT, ["n", 1, size, size])],
        [
            helper.make_tensor_value_info(contract.LOGITS_NAME, TensorProto.FLOAT, ["n", n]),
            helper.make_tensor_value_info(contract.PROBABILITIES_NAME, TensorProto.FLOAT, ["n", n]),
        ],
        [
            numpy_helper.from_array(means.T.astype(np.float32), "W"),
            numpy_helper.from_array((-0.5 * (means**2).sum(1)).astype(np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    helper.set_model_props(model, {contract.META_LABELS: json.dumps(list(contract.CLASSES))})
    path.write_bytes(model.SerializeToString())
    return path


def make_inputs(data_dir: Path, root: Path, pngs: int, photos: int, copies: int) -> dict[str, Path]:
    raw = mnist.raw_dir(data_dir)
    images = mnist.read_images(raw / "t10k-images-idx3-ubyte")
    labels = mnist.read_labels(raw / "t10k-labels-idx1-ubyte")
    digits = images[np.isin(labels, contract.CLASSES)]
    folders = {"pngs": root / "pngs", "photos": root / "photos", "many": root / "many"}
    for folder in folders.values():
        folder.mkdir()
    for i in range(pngs):
        Image.fromarray(digits[i % len(digits)]).save(folders["pngs"] / f"{i:06d}.png")
    rng = np.random.default_rng(0)
    for i in range(photos):
        (folders["photos"] / f"{i:04d}.png").write_bytes(photo_png(digits[i % len(digits)], rng))
    for copy in range(copies):
        (folders["many"] / str(copy)).mkdir()
        for png in folders["pngs"].iterdir():
            os.link(png, folders["many"] / str(copy) / png.name)
    return folders


@contextlib.contextmanager
def dask_cluster(folder: Path, env: dict[str, str]) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """`dask scheduler` and two `dask worker --nthreads 1 --no-nanny` processes on 127.0.0.1;
    yields the scheduler's address and the workers once they have joined, then stops them."""
    dask = str(Path(sys.executable).with_name("dask"))
    folder.mkdir(parents=True)
    started: list[subprocess.Popen] = []

    def start(name: str, *argv: str) -> Path:
        log = folder / f"{name}.log"
        with log.open("wb") as out:
            started.append(subprocess.Popen([dask, *argv], stdout=out, stderr=out, cwd=folder, env=env))
        return log

    def wait_for(log: Path, pattern: str) -> str:
        for _ in range(600):
            found = re.search(pattern, log.read_text())
            if found:
                return found[0]
            time.sleep(0.1)
        raise SystemExit(f"dask did not start in 60 s:\n{log.read_text()}")

    try:
        log = start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard")
        address = wait_for(log, r"tcp://127\.0\.0\.1:\d+")
        flags = ["--host", "127.0.0.1", "--nthreads", "1", "--no-nanny", "--no-dashboard"]
        logs = [start(f"worker{i}", "worker", address, *flags) for i in range(2)]
        for worker_log in logs:
            wait_for(worker_log, "Registered to:")
        yield address, started[1:]
    finally:
        # The workers first, then the scheduler once they have ended (as tests/helpers.py does): a
        # worker stopped while its scheduler closes can hang in its own shutdown.
        for group in (started[1:], started[:1]):
            for process in group:
                process.terminate()
            for process in group:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def measure(argv: list[str], workers: list[psutil.Process] = (), env: dict | None = None) -> dict:
    """Run one `digits batch`; its summary, peak RSS of the driver and its workers (MB), and the
    cores its workers got: their CPU seconds over the command's (on a busy machine, fewer than asked)."""

    def cpu(process: psutil.Process) -> float:
        times = process.cpu_times()
        return times.user + times.system

    before = {p.pid: cpu(p) for p in workers}  # a Dask worker outlives the command
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    driver = psutil.Process(process.pid)
    peak_driver = peak_workers = 0
    used: dict[int, float] = {}
    while process.poll() is None:
        try:
            peak_driver = max(peak_driver, driver.memory_info().rss)
            others = list(workers) or driver.children(recursive=True)
            peak_workers = max(peak_workers, sum(p.memory_info().rss for p in others))
            for p in others:
                used[p.pid] = cpu(p) - before.get(p.pid, 0.0)
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.05)
    out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, argv))} failed:\n{err}")
    summary = json.loads(out)
    cores = sum(used.values()) / summary["seconds"]
    return {**summary, "driver_mb": peak_driver / 2**20, "workers_mb": peak_workers / 2**20, "cores": cores}


def same_parts(a: Path, b: Path) -> bool:
    import pyarrow.parquet as pq

    parts = sorted(p.name for p in a.glob("part-*.parquet"))
    return parts == sorted(p.name for p in b.glob("part-*.parquet")) and all(
        pq.read_table(a / name).equals(pq.read_table(b / name)) for name in parts
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="digits batch: local processes and a Dask cluster")
    parser.add_argument("--model", default="artifacts/model.onnx")
    parser.add_argument("--data-dir", default="artifacts/mnist")
    parser.add_argument("--quick", action="store_true", help="a tenth of the inputs, to try the script")
    parser.add_argument("--before", help="the src folder of another digits_runtime, to compare with")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    mnist.download(args.data_dir)
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        model = Path(args.model)
        if not model.is_file():
            model = class_mean_model(Path(args.data_dir), root / "model.onnx")
            print(f"{args.model} not found: using a class-mean model of MNIST ({model.name})")
        start = time.perf_counter()
        folders = make_inputs(Path(args.data_dir), root, 20_000 // scale, 500 // scale, 5)
        print(f"inputs generated in {time.perf_counter() - start:.0f} s; {os.cpu_count()} cores\n")
        results: dict[tuple[str, str], dict] = {}
        before: dict[tuple[str, str], dict] = {}
        versions = {"": dict(os.environ)}
        if args.before:
            path = os.pathsep.join(
                filter(None, [str(Path(args.before).resolve()), os.environ.get("PYTHONPATH")])
            )
            versions = {"before": {**os.environ, "PYTHONPATH": path}, "": dict(os.environ)}

        def batch(name: str, data: str, *flags: str, clusters: dict | None = None) -> None:
            for version, env in versions.items():
                output = root / "out" / version / f"{data}-{name}"
                argv = [str(DIGITS), "batch", "--model", str(model), str(folders[data]), str(output), *flags]
                if clusters is not None:
                    address, workers = clusters[version]
                    argv += ["--engine", "dask", "--scheduler", address]
                else:
                    workers = ()
                result = measure(argv, workers, env) | {"output": output}
                (before if version else results)[(name, data)] = result
                print(
                    f"{data:<7}{(name + (' (before)' if version else '')):<31}{result['inputs']:>8}"
                    f"{result['images_per_second']:>10.0f}{result['seconds']:>9.1f}{result['driver_mb']:>10.0f}"
                    f"{result['workers_mb']:>10.0f}{result['partition_size']:>7}{result['cores']:>7.2f}",
                    flush=True,
                )

        print(
            f"{'inputs':<7}{'engine':<31}{'images':>8}{'images/s':>10}{'s':>9}{'driver MB':>10}"
            f"{'workers MB':>11}{'part':>7}{'cores':>7}"
        )
        with contextlib.ExitStack() as stack:
            clusters = {}
            for version, env in versions.items():
                address, started = stack.enter_context(
                    dask_cluster(root / "cluster" / (version or "now"), env)
                )
                clusters[version] = (address, [psutil.Process(p.pid) for p in started])
            for data in ("photos", "pngs"):
                batch("local --workers 1", data, "--workers", "1")
                batch("local --workers 2", data, "--workers", "2")
                batch("dask (2 workers)", data, clusters=clusters)
            for size in (256, 4096):
                batch(f"dask, part {size}", "pngs", "--partition-size", str(size), clusters=clusters)
            batch("local --workers 2", "many", "--workers", "2")
            batch("dask (2 workers)", "many", clusters=clusters)

        if before:
            print("\nimages/s of this version over the one before, configuration by configuration:")
            for key, result in results.items():
                ratio = result["images_per_second"] / before[key]["images_per_second"]
                print(f"{key[1]:<7}{key[0]:<22}{ratio:>8.3f}")
        rate = {key: r["images_per_second"] for key, r in results.items()}
        checks = {
            "photos_w2_w1": rate["local --workers 2", "photos"] / rate["local --workers 1", "photos"],
            "pngs_w2_w1": rate["local --workers 2", "pngs"] / rate["local --workers 1", "pngs"],
            "dask_local": rate["dask (2 workers)", "pngs"] / rate["local --workers 2", "pngs"],
            "driver_mb": max(r["driver_mb"] for (_, data), r in results.items() if data == "many"),
        }
        print()
        for name, value in checks.items():
            target = TARGETS[name]
            met = value <= target if name == "driver_mb" else value >= target
            unit = " MB" if name == "driver_mb" else "x"
            bound = "at most" if name == "driver_mb" else "at least"
            print(
                f"{name:<14}{value:>8.2f}{unit}  target {bound} {target}{unit}: {'met' if met else 'NOT met'}"
            )
        reference = {data: results["local --workers 1", data]["output"] for data in ("photos", "pngs")}
        same = all(
            same_parts(reference[data], r["output"])
            for (name, data), r in results.items()
            if data in reference and "part" not in name
        )
        print(f"same Parquet parts from every engine and number of workers: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
