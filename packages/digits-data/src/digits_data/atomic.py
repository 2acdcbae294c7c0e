"""Atomic output: files and folders are written beside their target, then renamed over it.

A crash or a failed check leaves either the old output or nothing, never a half-written one.
Scratch names start with the target's name (``.NAME.XXXX.tmp``), so the next writer of the same
target finds what a killed run left behind and removes it. Folders are written under a lock,
so two runs writing the same folder take turns instead of tripping over each other.
"""

import contextlib
import errno
import fcntl
import fnmatch
import glob
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from digits_data.errors import DigitsError

_WHAT_TO_DO = {
    errno.ENOSPC: "free some space and run again",
    errno.EDQUOT: "free some space and run again",
    errno.EFBIG: "free some space and run again",
    errno.EROFS: "the file system is read-only: choose another place",
    errno.EACCES: "fix its permissions or choose another place",
    errno.EPERM: "fix its permissions or choose another place",
}


def write_failed(target: str | os.PathLike, exc: OSError) -> DigitsError:
    """The one-line error for an output that could not be written (disk full, read-only, ...)."""
    reason = exc.strerror or str(exc)
    hint = _WHAT_TO_DO.get(exc.errno or 0)
    return DigitsError(f"cannot write {target}: {reason}" + (f"; {hint}" if hint else ""))


def ensure_dir(directory: str | os.PathLike) -> Path:
    """Create ``directory`` (and parents) and check that it is writable."""
    path = Path(directory)
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise DigitsError(f"cannot create output folder {path}: {blocker} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DigitsError(f"cannot create output folder {path}: {exc.strerror}") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise DigitsError(f"output folder {path} is not writable: choose another or fix its permissions")
    return path


def scratch_pattern(target: Path) -> str:
    """The glob pattern of the scratch files and folders that writing ``target`` uses."""
    return f".{glob.escape(target.name)}.*.tmp"


def remove_orphans(target: str | os.PathLike) -> list[Path]:
    """Remove the scratch that killed writers of ``target`` left beside it; return what was removed.

    Call it only while no other writer of ``target`` can be running (see :func:`exclusive`).
    """
    target = Path(target)
    removed = []
    for leftover in target.parent.glob(scratch_pattern(target)):
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        removed.append(leftover)
    return removed


@contextlib.contextmanager
def exclusive(target: str | os.PathLike) -> Iterator[None]:
    """Hold the lock on writing ``target``; a second writer waits for the first, saying so once.

    The lock is ``flock`` on ``.NAME.lock`` beside ``target`` (released by the kernel when the
    process ends, however it ends). Once it is held, scratch that killed writers left is removed.
    """
    target = Path(target)
    ensure_dir(target.parent)
    lock_path = target.parent / f".{target.name}.lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise write_failed(lock_path, exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another run that is writing {target} ...", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        remove_orphans(target)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in ``target``'s folder; on success rename it to ``target``.

    On any exception the temporary file is removed and ``target`` is left untouched. A write
    that fails for lack of space or permission becomes a :class:`DigitsError` naming ``target``.
    A symbolic link is followed; a device, pipe or folder at ``target`` is refused.
    """
    target = Path(target)
    if target.is_symlink():
        target = Path(os.path.realpath(target))  # write what the link points to, keep the link
    if target.exists() and not target.is_file():
        # Renaming over it would replace a device (/dev/null), a pipe or a folder with our file.
        raise DigitsError(
            f"{target} is not a regular file (a device, pipe or folder): give a file path to write"
        )
    ensure_dir(target.parent)
    tmp_path = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, target)
    except OSError as exc:
        raise write_failed(target, exc) from None
    finally:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike, owned: Sequence[str]) -> Iterator[Path]:
    """Yield an empty scratch folder beside ``target``; on success it replaces ``target`` whole.

    So a step's outputs change together or not at all: a run killed or failing half way leaves
    the previous folder as it was (and its scratch is removed by the next run). Writers of the
    same folder take turns (:func:`exclusive`). An existing ``target`` is replaced only when every
    entry in it matches one of the ``owned`` glob patterns (the files this step writes); anything
    else is refused, so a mistyped output folder never loses a user's files.
    """
    target = Path(target)
    if target.is_symlink():
        target = Path(os.path.realpath(target))  # replace what the link points to, keep the link
    with exclusive(target):
        _check_owned(target, owned)
        scratch = None
        try:
            scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
            os.chmod(scratch, 0o755)
            yield scratch
            old = None
            if target.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
                os.replace(target, old)  # over the empty folder just made
            os.replace(scratch, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            raise write_failed(target, exc) from None
        except DigitsError as exc:
            if scratch is None:
                raise
            # Name the file where the user will look for it, not its place in the scratch folder.
            raise type(exc)(str(exc).replace(str(scratch), str(target))) from None
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)


def _check_owned(target: Path, owned: Sequence[str]) -> None:
    if not target.exists():
        return
    if not target.is_dir():
        raise DigitsError(f"{target} exists and is not a folder: choose another output folder")
    strangers = sorted(p.name for p in target.iterdir() if not any(fnmatch.fnmatch(p.name, g) for g in owned))
    if strangers:
        raise DigitsError(
            f"{target} holds files this step did not write ({', '.join(strangers[:3])}"
            f"{', ...' if len(strangers) > 3 else ''}), so it will not replace it: "
            "choose a new or empty output folder"
        )


def write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    """Atomically write ``data`` to ``target``."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``target``."""
    return write_bytes(target, text.encode("utf-8"))
