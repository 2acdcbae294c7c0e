"""Atomic file output: write to a temporary file beside the target, then rename over it.

A crash or a failed check leaves either the old file or nothing, never a half-written one.
"""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from digits_data.errors import DigitsError


def ensure_dir(directory: str | os.PathLike) -> Path:
    """Create ``directory`` (and parents) and check that it is writable."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DigitsError(f"cannot create output folder {path}: {exc.strerror}") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise DigitsError(f"output folder {path} is not writable: choose another or fix its permissions")
    return path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``target``'s folder; on success rename it to ``target``.

    On any exception the temporary file is removed and ``target`` is left untouched.
    """
    target = Path(target)
    ensure_dir(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    """Atomically write ``data`` to ``target``."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``target``."""
    return write_bytes(target, text.encode("utf-8"))
