"""`digits batch`'s OUTPUT folder: on this machine (files written whole, then renamed) or in an fsspec store.

This module owns how OUTPUT is reached: making it, holding it for one run (a lock on a local
folder), listing, reading, writing and removing its files, and saying in one line why a store
cannot be written. What the files in it mean is :mod:`digits_runtime.parts`'s and
:mod:`digits_runtime.jobs`'s. fsspec comes with the ``batch`` extra and is imported only here.
"""

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from digits_core import atomic
from digits_core.errors import DigitsError, first_line


class OutputFolder:
    """The OUTPUT folder, on this machine (files written whole, then renamed) or in an fsspec store."""

    def __init__(self, output: str) -> None:
        import fsspec

        self.name = output.rstrip("/") or output
        # Before fsspec is asked: its HTTP file system needs packages a reader of HTTP lacks anyway.
        if (fsspec.core.split_protocol(output)[0] or "").lower() in ("http", "https"):
            raise DigitsError(
                f"cannot write {output}: HTTP is read-only: give a folder or an object store URI"
            )
        try:
            self.fs, root = fsspec.core.url_to_fs(output)
        except ImportError as exc:  # s3:// without s3fs, gs:// without gcsfs, ...
            raise DigitsError(f"cannot write {output}: {first_line(exc)}") from None
        except ValueError as exc:  # an unknown protocol
            raise DigitsError(
                f"cannot write {output}: {first_line(exc)}: give a folder or a URI fsspec writes"
            ) from None
        self.local = "file" in self.fs.protocol
        self.root = os.path.abspath(root) if self.local else root.rstrip("/")

    def create(self) -> None:
        """Make the folder (locally; an object store has none to make), refusing a file in its place."""
        if self.local:
            if Path(self.root).exists() and not Path(self.root).is_dir():
                raise DigitsError(f"{self.name} is a file: give a folder for the Parquet files")
            atomic.ensure_dir(self.root)
        elif self._call(self.fs.isfile, self.root):
            raise DigitsError(f"{self.name} is a file: give a folder for the Parquet files")

    def _call(self, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except FileNotFoundError:
            raise
        except Exception as exc:  # an object store's client raises its own kinds of error
            raise DigitsError(f"cannot write {self.name}: {first_line(exc)}") from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold OUTPUT for this run: ``flock`` on the folder itself, so nothing is added to it.

        A second run on the same OUTPUT stops at once with one line. An object store has no lock:
        there a run checks at its end that OUTPUT holds its own parts only, once each.
        """
        if not self.local:
            yield
            return
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DigitsError(
                    f"{self.name} is being written by another digits batch: wait for it to end, "
                    "or give another OUTPUT"
                ) from None
            except OSError as exc:
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP):
                    raise
            yield
        finally:
            os.close(fd)  # releases the lock

    def path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def entries(self) -> dict[str, bool]:
        """Each name in the folder, and whether it is a regular file (not a link, folder or device)."""
        if self.local:
            with os.scandir(self.root) as found:
                return {e.name: e.is_file(follow_symlinks=False) for e in found}
        try:
            listed = self._call(self.fs.ls, self.root, True)
        except FileNotFoundError:
            return {}
        return {info["name"].rsplit("/", 1)[-1]: info.get("type") == "file" for info in listed}

    def read_bytes(self, name: str) -> bytes | None:
        """The file's bytes, or None if there is no such file."""
        try:
            return self._call(self.fs.cat_file, self.path(name))
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        """Write a file whole. Locally it reaches the disk at :meth:`flush`: a part's name carries
        its content's checksum, so a part that a power loss cut short is found and written again."""
        if self.local:
            atomic.write_bytes(self.path(name), data, follow_link=False, durable=False)
        else:
            self._call(self.fs.pipe_file, self.path(name), data)  # one object, whole or not at all

    def flush(self) -> None:
        """Put every file written so far on the disk (an object store's writes already are)."""
        if self.local:
            try:
                atomic.sync_tree(self.root)
            except OSError as exc:
                raise DigitsError(f"cannot write {self.name}: {first_line(exc)}") from None

    def remove(self, name: str) -> None:
        if self.local:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path(name))
        else:
            with contextlib.suppress(FileNotFoundError):
                self._call(self.fs.rm_file, self.path(name))
