"""Atomic output: files and folders are written beside their target, then renamed over it.

A crash or a failed check leaves either the old output or nothing, never a half-written one.
Before the rename the file's data is flushed to the disk (``fsync``), and after it the folder
holding the new name is, so a power loss too leaves one or the other.
Scratch names start with the target's name (``.NAME.XXXX.tmp``), so the next writer of the same
target finds what a killed run left behind and removes it. Folders are written under a lock,
so two runs writing the same folder take turns instead of tripping over each other, and carry
a record of the step that wrote them and the sha256 of every file it wrote, so that a step
replaces only a folder of its own whose files are still the ones it wrote (that record is
:mod:`digits_core.ownership`'s).
"""

import contextlib
import ctypes
import errno
import fcntl
import glob
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from digits_core import ownership
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
def atomic_path(
    target: str | os.PathLike, *, follow_link: bool = True, durable: bool = True
) -> Iterator[Path]:
    """Yield a temporary path in ``target``'s folder; on success rename it to ``target``.

    With ``durable`` (the default) the data, then the new name, are flushed to the disk before
    this returns. ``durable=False`` leaves that to the caller: for many files whose names carry
    a checksum of their content, a reader can tell a file a power loss cut short, and one
    :func:`sync_tree` at the end costs far less than a flush per file.

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
        if durable:
            sync(tmp_path)  # the data is on the disk before the name points at it
        os.replace(tmp_path, target)
        if durable:
            sync(target.parent)  # and so is the new name
    except OSError as exc:
        raise write_failed(target, exc) from None
    finally:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
        if fd is not None:
            os.close(fd)  # releases the lock that marks the scratch file as in use


def sync(path: str | os.PathLike) -> None:
    """Flush a file's data, or a folder's entries, to the disk (``fsync``), so that a power loss keeps them.

    A file system that cannot sync a folder (``EINVAL``, as some network ones answer) is let be:
    it offers nothing better.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


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
            fd = os.open(leftover, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a pipe: never wait
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


@contextlib.contextmanager
def atomic_dir(
    target: str | os.PathLike,
    step: str,
    *,
    added_later: Collection[str] = (),
    legacy: Callable[[Path], ownership.Proof] | None = None,
) -> Iterator[Path]:
    """Yield an empty scratch folder beside ``target``; on success it replaces ``target`` whole.

    So a step's outputs change together or not at all: a run killed or failing half way leaves
    the previous folder as it was (and its scratch is removed by the next run). Writers of the
    same folder take turns (:func:`exclusive`). Every file and folder written is flushed to the
    disk before the rename, and the rename after it.

    The folder gets a record (:mod:`digits_core.ownership`) naming ``step`` and the sha256 of
    every file it wrote. An existing ``target`` is replaced only when its record names the same
    ``step`` and every file in it is one the record lists with the same content, or one that other
    steps add to it (``added_later``, by exact name) whose content ``legacy(target)`` vouches for.
    Anything else (a file the record does not list or lists with other content, a link, a pipe, a
    record that is a link or not a regular file) makes the whole replacement refused before any
    work, so an output folder given by mistake, or a forged or copied record, never costs a user a
    file.

    A folder without a record, or with a record of the previous format (names, no content),
    is replaced only when ``legacy(target)`` vouches for all of it: the step's own older files
    (its manifest, with checksums) prove the content of the rest. A bare collection of names from
    ``legacy`` is trusted by name; steps whose older folders carry checksums should not return one.
    """
    target = Path(target)
    if target.is_symlink():
        target = Path(os.path.realpath(target))  # replace what the link points to, keep the link
    with exclusive(target):
        try:
            if target.is_dir():
                for name in added_later:  # what a killed writer of such a file left is not in the way
                    _remove_dead_scratch(target / name)
            ownership.check_owned(target, step, added_later, legacy)
        except OSError as exc:  # unreadable, or changed by someone else while being checked
            raise DigitsError(
                f"cannot check what {target} holds ({exc.strerror or exc}), so `{step}` will not replace it: "
                "fix its permissions or choose another output folder"
            ) from None
        scratch = None
        try:
            scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
            os.chmod(scratch, 0o755)
            yield scratch
            ownership.write_record(scratch, step)
            sync_tree(scratch)  # every file and folder on the disk before the rename
            old = None
            if target.exists() and _exchange(scratch, target):
                pass  # one step: the previous folder is now the scratch folder, removed below
            else:
                if target.exists():  # two steps: a crash between them leaves no folder at target
                    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
                    os.replace(target, old)  # over the empty folder just made
                os.replace(scratch, target)
            sync(target.parent)
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


def sync_tree(folder: str | os.PathLike) -> None:
    """Flush every file and folder under ``folder`` to the disk.

    On Linux one ``syncfs`` of the file system holding it does that: for a folder of 1,226 small
    files (the handwriting set) it adds about 0.5 s, where an ``fsync`` per file added 4 to 5 s
    (benchmarks/bench_durable.py). Elsewhere each file and folder is flushed in turn.
    """
    if _syncfs(folder):
        return
    for top, _, files in os.walk(folder):
        for name in files:
            path = Path(top, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                sync(path)
        sync(top)


_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap the folders ``a`` and ``b`` in one step (``renameat2`` with ``RENAME_EXCHANGE``, Linux),
    so that no crash can leave neither at ``b``; False where the system or file system cannot."""
    function = getattr(_LIBC, "renameat2", None)
    if function is None:
        return False
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if function(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _syncfs(folder: str | os.PathLike) -> bool:
    """``syncfs`` on the file system of ``folder``; False where the system has none."""
    function = getattr(_LIBC, "syncfs", None)
    if function is None:
        return False
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if function(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), str(folder))
    finally:
        os.close(fd)
    return True


def write_bytes(
    target: str | os.PathLike, data: bytes, *, follow_link: bool = True, durable: bool = True
) -> Path:
    """Atomically write ``data`` to ``target`` (:func:`atomic_path` says what the flags do)."""
    with atomic_path(target, follow_link=follow_link, durable=durable) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target: str | os.PathLike, text: str) -> Path:
    """Atomically write UTF-8 ``text`` to ``target``."""
    return write_bytes(target, text.encode("utf-8"))
