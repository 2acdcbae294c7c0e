"""The wheels `make dist` builds install and work where there is no checkout.

One fresh virtual environment in a temporary folder, outside the repository: the runtime wheel
alone first (it answers `digits predict`, and says which extra the other commands need), then
each extra in turn, each time with a clean check of the requirements, running the command that
extra brings. The installs go through uv (a dev tool of this repository): it resolves the wheels'
metadata as pip does, from ``--find-links`` for the packages of this repository, and its cache
makes each install take a fraction of a second where pip takes several.
"""

import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from digits_core import contract
from digits_data import dataset

from http_helpers import post

from helpers import wait_listening

REPO = Path(__file__).resolve().parents[2]
VERSION = (REPO / "VERSION").read_text().strip()
UV = Path(sys.executable).parent / "uv"
PACKAGES = ("digits_core", "digits_data", "digits_train", "digits_runtime", "digits_serve", "digits_report")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make dist` into a temporary folder: a wheel and an sdist of every package.

    Built once per run, whatever the number of test processes: two builds at once would write
    the same packages' egg-info folders.
    """
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the run's folder
    out = root / "dist"
    with open(root / "dist.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "dist.done").exists():
            # With this environment's build tools, wherever it is (.venv or a tox env), never installing.
            bin_dir, installed = Path(sys.executable).parent, REPO / ".venv" / ".installed"
            done = subprocess.run(
                [
                    "make",
                    "--no-print-directory",
                    "-s",
                    f"-o{installed}",
                    "dist",
                    f"DIST={out}",
                    f"BIN={bin_dir}",
                ],
                cwd=REPO,
                capture_output=True,
                text=True,
            )
            assert done.returncode == 0, done.stderr
            (root / "dist.done").touch()
    return out


def test_make_dist_builds_a_wheel_and_an_sdist_of_every_package_at_one_version(dist):
    assert sorted(p.name for p in dist.iterdir()) == sorted(
        [f"{name}-{VERSION}-py3-none-any.whl" for name in PACKAGES]
        + [f"{name}-{VERSION}.tar.gz" for name in PACKAGES]
    )
    with zipfile.ZipFile(dist / f"digits_runtime-{VERSION}-py3-none-any.whl") as wheel:
        names = wheel.namelist()
        meta = wheel.read(f"digits_runtime-{VERSION}.dist-info/METADATA").decode()
    assert not [
        name for name in names if name.startswith(("tests/", "digits_data/", "digits_core/", "digits_serve/"))
    ]
    # What the runtime needs without extras: digits-core, never digits-data or torch.
    plain = re.findall(r"^Requires-Dist: ([A-Za-z0-9_.-]+)[^;\n]*$", meta, re.MULTILINE)
    assert sorted(plain) == ["digits-core", "fire", "numpy", "onnxruntime", "pillow", "tqdm"]
    assert re.findall(r"^Provides-Extra: (\w+)$", meta, re.MULTILINE) == ["evaluate", "serve", "batch"]
    # The serve extra is the package digits-serve, which brings the server's own requirements.
    serve = re.findall(r"^Requires-Dist: ([A-Za-z0-9_.-]+).*; extra == \"serve\"$", meta, re.MULTILINE)
    assert serve == ["digits-serve"]
    with zipfile.ZipFile(dist / f"digits_serve-{VERSION}-py3-none-any.whl") as wheel:
        names = wheel.namelist()
        meta = wheel.read(f"digits_serve-{VERSION}.dist-info/METADATA").decode()
    assert "digits_serve/page.html" in names  # package data travels with the code
    with zipfile.ZipFile(dist / f"digits_train-{VERSION}-py3-none-any.whl") as wheel:
        fonts = [name for name in wheel.namelist() if name.startswith("digits_train/fonts/")]
    assert len([name for name in fonts if name.endswith((".otf", ".ttf"))]) == 16  # and the fonts
    assert {"digits_train/fonts/OFL.txt", "digits_train/fonts/README.md"} <= set(fonts)
    assert not [name for name in names if name.startswith(("tests/", "digits_runtime/", "digits_core/"))]
    needs = re.findall(r"^Requires-Dist: ([A-Za-z0-9_.-]+)", meta, re.MULTILINE)
    assert {"digits-core", "digits-runtime", "starlette", "uvicorn", "prometheus-client"} <= set(needs)


def run(venv: Path, *args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """A program of the fresh environment, run from ``cwd`` with none of this checkout on its paths.

    ``uv`` is the one of the tests' environment, told to work on the fresh one.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    if args[0] == "uv":
        argv = [str(UV), *args[1:3], "--python", str(venv / "bin" / "python"), *args[3:]]
    else:
        argv = [str(venv / "bin" / args[0]), *args[1:]]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)


def fresh_venv(folder: Path) -> Path:
    """An empty virtual environment (no pip: uv installs into it)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    return folder


def installed(venv: Path, cwd: Path) -> dict[str, str]:
    """Every distribution of the environment: its version, by lower-case name."""
    listed = run(venv, "uv", "pip", "list", "--format", "json", cwd=cwd)
    assert listed.returncode == 0, listed.stderr
    return {p["name"].lower(): p["version"] for p in json.loads(listed.stdout)}


def assert_requirements_met(venv: Path, cwd: Path) -> None:
    checked = run(venv, "uv", "pip", "check", cwd=cwd)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All installed packages are compatible" in checked.stderr, checked.stderr


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_runtime_installs_and_runs_outside_the_repository(dist, model_path, small_curated, tmp_path):
    started = time.monotonic()
    place = tmp_path / "elsewhere"
    place.mkdir()
    assert REPO not in place.parents
    model = place / "model.onnx"
    model.write_bytes(model_path.read_bytes())
    curated = place / "curated"
    curated.mkdir()
    for file in small_curated.iterdir():
        if file.is_file():
            (curated / file.name).write_bytes(file.read_bytes())
    scans = place / "scans"
    scans.mkdir()
    eval_split = dataset.load_split(small_curated, "eval")
    for index in range(5):
        Image.fromarray(eval_split.images[index]).save(scans / f"{index}.png")
    (scans / "broken.png").write_bytes(b"not an image")

    venv = fresh_venv(place / "venv")
    wheel = str(dist / f"digits_runtime-{VERSION}-py3-none-any.whl")

    def install(requirement: str) -> None:
        done = run(venv, "uv", "pip", "install", "--quiet", "--find-links", str(dist), requirement, cwd=place)
        assert done.returncode == 0, done.stderr
        assert_requirements_met(venv, place)

    # The runtime alone: digits-core and third-party packages, no digits-data, no torch.
    install(wheel)
    timings = {"runtime": time.monotonic() - started}
    names = set(installed(venv, place))
    assert {"digits-runtime", "digits-core", "onnxruntime"} <= names
    unwanted = {"digits-data", "digits-train", "digits-serve", "torch", "matplotlib", "starlette", "pyarrow"}
    assert not names & unwanted
    where = run(venv, "python", "-c", "import digits_runtime; print(digits_runtime.__file__)", cwd=place)
    assert where.stdout.startswith(str(venv)), where.stdout

    answer = run(venv, "digits", "predict", "--model", str(model), str(scans / "0.png"), cwd=place)
    assert answer.returncode == 0, answer.stderr
    line = json.loads(answer.stdout)
    assert line["prediction"] == int(eval_split.labels[0])
    assert set(line["probs"]) == {str(d) for d in contract.CLASSES}
    for command, extra in (("serve", "serve"), ("batch", "batch"), ("evaluate", "evaluate")):
        args = ["scans", "out"] if command == "batch" else []
        missing = run(venv, "digits", command, "--model", str(model), *args, cwd=place)
        assert missing.returncode == 1, (command, missing.stderr)
        assert missing.stderr.count("\n") == 1, missing.stderr
        assert f"digits-runtime[{extra}]" in missing.stderr, missing.stderr

    # [serve]: a real server on a free port of 127.0.0.1, one request, stopped by its pid.
    install("digits-runtime[serve]")  # as the README says: digits-serve, found in the same folder
    timings["serve"] = time.monotonic() - started - sum(timings.values())
    assert {"digits-serve", "starlette", "uvicorn"} <= set(installed(venv, place))
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as stderr:
        server = subprocess.Popen(
            [str(venv / "bin" / "digits"), "serve", "--model", str(model), "--port", str(port)],
            cwd=place,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        wait_listening(server, port, log)
        status, _, body = post(f"http://127.0.0.1:{port}", (scans / "0.png").read_bytes())
        assert status == 200
        (answer,) = body["results"]  # one image: one result
        assert (answer["prediction"], answer["accepted"]) == (line["prediction"], line["accepted"])
        assert answer["probs"] == line["probs"]
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0

    # [batch]: Parquet parts and the summary, read back with the pyarrow the extra installed.
    install("digits-runtime[batch]")
    timings["batch"] = time.monotonic() - started - sum(timings.values())
    done = run(
        venv, "digits", "batch", "--model", str(model), "--workers", "1", "scans", "results", cwd=place
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["inputs"], summary["errors"]) == (6, 1)
    rows = run(
        venv,
        "python",
        "-c",
        "import pyarrow.parquet as pq; print(pq.read_table('results').num_rows)",
        cwd=place,
    )
    assert rows.stdout.strip() == "6", rows.stderr

    # [evaluate]: digits-data joins, to read the curated splits.
    install("digits-runtime[evaluate]")
    timings["evaluate"] = time.monotonic() - started - sum(timings.values())
    done = run(
        venv,
        "digits",
        "evaluate",
        "--model",
        str(model),
        "--curated-dir",
        "curated",
        "--split",
        "eval",
        cwd=place,
    )
    assert done.returncode == 0, done.stderr
    assert f"({len(eval_split)} images)" in done.stdout
    print(f"installs and runs outside the repository: {time.monotonic() - started:.1f} s, {timings}")


def test_the_runtime_installs_from_a_git_url(tmp_path):
    """digits-core and the runtime built from a clone of this repository's last commit (as the
    README's git URL does) by their own build backend, in a fresh environment; the version comes
    from VERSION there too."""
    venv = fresh_venv(tmp_path / "venv")
    url = f"git+file://{REPO}"
    done = run(
        venv,
        "uv",
        "pip",
        "install",
        "--quiet",
        f"digits-core @ {url}#subdirectory=packages/digits-core",
        f"digits-runtime @ {url}#subdirectory=packages/digits-runtime",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    versions = installed(venv, tmp_path)
    assert (versions["digits-core"], versions["digits-runtime"]) == (VERSION, VERSION)
    assert "digits-data" not in versions
    assert_requirements_met(venv, tmp_path)
    answer = run(venv, "digits", "predict", "--help", cwd=tmp_path)
    assert answer.returncode == 0, answer.stderr
