"""Atomic output: files and folders are written beside their target, then renamed over it.

A crash or a failed check leaves either the old output or nothing, never a half-written one.
Scratch names start with the target's name (``.NAME.XXXX.tmp``), so the next writer of the same
target finds what a killed run left behind and removes it. Folders are written under a lock,
so two runs writing the same folder take turns instead of tripping over each other, and carry
a record of the step that wrote them, so that a step replaces only a folder of its own.
"""

import contextlib
import errno
import fcntl
import glob
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

from digits_core.errors import DigitsError

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
def atomic_path(target: str | os.PathLike, *, follow_link: bool = True) -> Iterator[Path]:
    """Yield a temporary path in ``target``'s folder; on success rename it to ``target``.

    On any exception the temporary file is removed and ``target`` is left untouched. A write
    that fails for lack of space or permission becomes a :class:`DigitsError` naming ``target``.
    A symbolic link is followed (with ``follow_link=False`` the link itself is replaced by the
    file); a device, pipe or folder at ``target`` is refused. Scratch files of ``target`` that
    killed writers left are removed first; those of writers still running are left alone.
    """
    target = Path(target)
    if follow_link and target.is_symlink():
        target = Path(os.path.realpath(target))  # write what the link points to, keep the link
    if target.exists() and not target.is_symlink() and not target.is_file():
        # Renaming over it would replace a device (/dev/null), a pipe or a folder with our file.
        raise DigitsError(
            f"{target} is not a regular file (a device, pipe or folder): give a file path to write"
        )
    ensure_dir(target.parent)
    fd = tmp_path = None
    try:
        _remove_dead_scratch(target)
        fd, tmp_path = _scratch_file(target)
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, target)
    except OSError as exc:
        raise write_failed(target, exc) from None
    finally:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
        if fd is not None:
            os.close(fd)  # releases the lock that marks the scratch file as in use


def _scratch_file(target: Path) -> tuple[int, Path]:
    """A new scratch file beside ``target``, locked (``flock``) for as long as its descriptor is open.

    The lock tells a writer that is alive from one that was killed: the kernel releases it when
    the process ends, however it ends.
    """
    while True:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without locks: nobody can lock it to remove it either
            return fd, Path(tmp)
        with contextlib.suppress(FileNotFoundError):
            if os.stat(tmp).st_ino == os.fstat(fd).st_ino:
                return fd, Path(tmp)
        os.close(fd)  # removed as dead between its creation and the lock: make another


def _remove_dead_scratch(target: Path) -> None:
    """Remove the scratch files of ``target`` whose writers are gone (no one holds their lock)."""
    for leftover in target.parent.glob(scratch_pattern(target)):
        try:
            fd = os.open(leftover, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue  # a link, or gone already
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                leftover.unlink(missing_ok=True)
        except OSError:
            pass  # a writer still running holds it (or the file system has no locks: keep it)
        finally:
            os.close(fd)


MARK = ".written-by"
"""The file in an output folder recording which step wrote it and what it put there (JSON)."""


@contextlib.contextmanager
def atomic_dir(
    target: str | os.PathLike,
    step: str,
    *,
    added_later: Collection[str] = (),
    legacy: Callable[[Path], Collection[str]] | None = None,
) -> Iterator[Path]:
    """Yield an empty scratch folder beside ``target``; on success it replaces ``target`` whole.

    So a step's outputs change together or not at all: a run killed or failing half way leaves
    the previous folder as it was (and its scratch is removed by the next run). Writers of the
    same folder take turns (:func:`exclusive`).

    The folder gets a record, :data:`MARK`, naming ``step`` and every entry it wrote. An existing
    ``target`` is replaced only when its record names the same ``step`` and it holds nothing but
    what the record lists and the files other steps are known to add to it (``added_later``, by
    exact name; scratch that killed writers of those left is removed). Any other non-empty
    folder is refused before any work, so an output folder given by mistake never loses a
    user's files. A folder written before records existed has none: ``legacy(folder)`` returns
    the names that the step's own older records (its manifest, its summary) account for, and
    such a folder is replaced only when they account for all of it.
    """
    target = Path(target)
    if target.is_symlink():
        target = Path(os.path.realpath(target))  # replace what the link points to, keep the link
    with exclusive(target):
        _check_owned(target, step, added_later, legacy)
        scratch = None
        try:
            scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
            os.chmod(scratch, 0o755)
            yield scratch
            written = sorted(p.name for p in scratch.iterdir())
            record = {"step": step, "files": written}
            (scratch / MARK).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
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


def read_json(path: str | os.PathLike) -> Any:
    """The JSON value in ``path``, or None when it is missing or not JSON (for records a step may find)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def written_by(folder: str | os.PathLike) -> dict | None:
    """The record of the step that wrote ``folder`` (``{"step", "files"}``), or None if it has none."""
    record = read_json(Path(folder) / MARK)
    if not isinstance(record, dict) or not isinstance(record.get("step"), str):
        return None
    files = record.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    return record


def _check_owned(
    target: Path,
    step: str,
    added_later: Collection[str],
    legacy: Callable[[Path], Collection[str]] | None,
) -> None:
    if not target.exists():
        return
    if not target.is_dir():
        raise DigitsError(f"{target} exists and is not a folder: choose another output folder")
    for name in added_later:  # what a killed writer of such a file left is not in the way
        _remove_dead_scratch(target / name)
    present = {p.name for p in target.iterdir()}
    if not present:
        return
    record = written_by(target)
    if record is not None and record["step"] != step:
        raise DigitsError(
            f"{target} was written by `{record['step']}`, not `{step}`, so it will not replace it: "
            "choose another output folder"
        )
    if record is not None:
        known = {MARK, *record["files"], *added_later}
    else:
        known = set(legacy(target)) if legacy is not None else set()
    strangers = sorted(present - known)
    if strangers:
        listed = ", ".join(strangers[:3]) + (", ..." if len(strangers) > 3 else "")
        raise DigitsError(
            f"{target} holds files `{step}` did not write ({listed}), so it will not replace it: "
            "move them out or choose a new or empty output folder"
        )


def write_bytes(target: str | os.PathLike, data: bytes, *, follow_link: bool = True) -> Path:
    """Atomically write ``data`` to ``target`` (see :func:`atomic_path` for ``follow_link``)."""
    with atomic_path(target, follow_link=follow_link) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``target``."""
    return write_bytes(target, text.encode("utf-8"))
