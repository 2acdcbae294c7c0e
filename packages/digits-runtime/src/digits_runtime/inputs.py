"""What `digits predict` and `digits batch` read: the listing rule and the fetching of URIs.

A folder gives its image files (by suffix, :data:`IMAGE_SUFFIXES`) sorted by path, walked as
``rglob`` walks it; a folder that cannot be read becomes an error of its own. This order is what
makes `digits batch` answer bit for bit as `digits predict` does: both list inputs here.
Globs and URIs (``s3://bucket/scans/``, read with fsspec, which comes with the ``batch`` extra)
are for `digits batch`.
"""

import fnmatch
import glob
import io
import os
from collections.abc import Sequence
from pathlib import Path

from digits_core.errors import DigitsError, first_line
from digits_core.images import IMAGE_SUFFIXES
from digits_runtime.sources import Source


def expand(inputs: Sequence[str]) -> list[tuple[Path, DigitsError | None]]:
    """Turn files and folders into the files to classify; folders give their images, sorted.

    Each entry is a path and, for a folder without image files or one that cannot be read, the
    error that is its answer, so that it becomes its own error line while the other inputs are
    still classified.
    """
    entries: list[tuple[Path, DigitsError | None]] = []
    for item in inputs:
        path = Path(str(item))
        try:
            is_dir = path.is_dir()
        except OSError:  # e.g. a name too long: reading it as a file says what is wrong
            is_dir = False
        if not is_dir:
            entries.append((path, None))
            continue
        found = _folder_images(path)
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        empty = DigitsError(f"folder {path} holds no image files ({suffixes})")
        entries.extend(found or [(path, empty)])
    return entries


def _folder_images(folder: Path) -> list[tuple[Path, DigitsError | None]]:
    """The image files under ``folder``, and a folder that cannot be read with its error, sorted by path.

    Folders are walked as ``rglob`` would (symbolic links to folders are not entered), but one
    that cannot be listed is reported rather than skipped without a word.
    """
    entries: list[tuple[Path, DigitsError | None]] = []

    def unreadable(exc: OSError) -> None:
        entries.append(
            (Path(exc.filename), DigitsError(f"folder {exc.filename} cannot be read: {exc.strerror}"))
        )

    for top, _, names in os.walk(folder, onerror=unreadable):
        for name in names:
            file = Path(top) / name
            if file.suffix.lower() in IMAGE_SUFFIXES and file.is_file():
                entries.append((file, None))
    return sorted(entries, key=lambda entry: entry[0])


def opened(chunk: Sequence[tuple[Source, str | None]]) -> list[Source | DigitsError]:
    """What the Predictor reads for each entry: the source itself, or a URI's bytes; or why not.

    URIs are fetched here with fsspec, a chunk at a time: object stores (s3fs, gcsfs, http)
    fetch the files of one call concurrently, where one request after another would wait on
    each round trip.
    """
    uris: dict[str, list[str]] = {}
    for source, error in chunk:
        if error is None and isinstance(source, str) and "://" in source:
            uris.setdefault(source.split("://", 1)[0], []).append(source)
    fetched: dict[str, io.BytesIO | DigitsError] = {}
    for group in uris.values():
        fetched |= fetch(group)
    opened: list[Source | DigitsError] = []
    for source, error in chunk:
        if error is not None:
            opened.append(DigitsError(error))
        else:
            opened.append(fetched.get(source, source) if isinstance(source, str) else source)
    return opened


def fetch(uris: list[str]) -> dict[str, io.BytesIO | DigitsError]:
    """The bytes of URIs of one file system, each named by its URI, or why it could not be read."""
    import fsspec

    try:
        located = [fsspec.core.url_to_fs(uri) for uri in uris]  # file systems are cached: one here
        fs, paths = located[0][0], [path for _, path in located]
        # cat_ranges, not cat: cat would read a name like scan[1].png as a glob.
        contents = fs.cat_ranges(paths, [0] * len(paths), [None] * len(paths), on_error="return")
    except (OSError, ValueError, ImportError) as exc:
        return {uri: DigitsError(f"{uri} cannot be read: {first_line(exc)}") for uri in uris}
    fetched: dict[str, io.BytesIO | DigitsError] = {}
    for uri, content in zip(uris, contents, strict=True):
        if isinstance(content, BaseException):
            fetched[uri] = DigitsError(f"{uri} cannot be read: {first_line(content)}")
        else:
            fetched[uri] = io.BytesIO(content)
            fetched[uri].name = uri  # load_image names the file in its messages by this
    return fetched


Input = tuple[str, str | None, str]
"""A path or URI, why listing already found it unreadable (or None), and its stamp: size and
modification time (or an object store's ETag), by which a resumed job sees that it changed."""


def list_inputs(source: str, *, skip: str | None = None) -> list[Input]:
    """The inputs under ``source`` (a folder, a glob or a URI), sorted, as `digits predict` orders them.

    A name that exists is taken literally even when it holds glob characters (``scan[1]/``,
    ``x[1].png``); only a name that does not exist is a glob. ``**`` does not enter symbolic
    links to folders, as a folder's listing does not, so a link to a parent cannot loop. Files
    under the folder ``skip`` (the job's own OUTPUT) are left out.
    """
    if "://" in source:
        entries = _list_uri(source)
    elif os.path.lexists(source):
        entries = [(str(path), error) for path, error in expand([source])]
        if len(entries) == 1 and entries[0][1] is not None:
            raise entries[0][1]
        entries = [(path, None if error is None else str(error), _stamp(path)) for path, error in entries]
    elif glob.has_magic(source):
        entries = [(path, None, _stamp(path)) for path in _glob(source)]
    else:
        raise DigitsError(f"{source}: no such file or folder")
    if skip is not None:
        inside = os.path.join(skip, "")
        entries = [entry for entry in entries if not entry[0].startswith(inside)]
    if not entries:
        raise DigitsError(f"{source} matches no files")
    return entries


def _stamp(path: str) -> str:
    """Size and modification time (ns): one stat, the cost of listing a file a second time."""
    try:
        info = os.stat(path)
    except OSError:
        return ""
    return f"{info.st_size}:{info.st_mtime_ns}"


def _glob(pattern: str) -> list[str]:
    """The files a local glob matches, sorted; ``**`` walks folders without entering links to folders.

    Python's own glob follows such links, and two links to a parent make it walk forever.
    """
    absolute = pattern.startswith(os.sep)
    parts = [p for p in pattern.split(os.sep) if p]
    found: list[str] = []

    def walk(folder: str, rest: list[str]) -> None:
        if not rest:
            if os.path.isfile(folder):
                found.append(folder)
            return
        head, tail = rest[0], rest[1:]
        if head == "**":  # any number of folders; last in the pattern, also the files in them
            walk(folder, tail)
            for entry in _scan(folder):
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    walk(entry.path, rest)
                elif not tail:
                    walk(entry.path, [])
            return
        if not glob.has_magic(head):
            path = os.path.join(folder, head)
            if os.path.lexists(path):
                walk(path, tail)
            return
        for entry in _scan(folder):
            hidden = entry.name.startswith(".") and not head.startswith(".")
            if not hidden and fnmatch.fnmatchcase(entry.name, head):
                walk(entry.path, tail)

    start = os.sep if absolute else os.curdir
    walk(start, parts)
    prefix = os.curdir + os.sep
    return sorted(p.removeprefix(prefix) if not absolute else p for p in found)


def _scan(folder: str) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as entries:
            return list(entries)
    except OSError:
        return []


def _list_uri(source: str) -> list[Input]:
    """The files a URI names: one file, a folder's image files, or a glob's matches; with their stamps."""
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(source)
        if fs.exists(root) and not fs.isdir(root):
            found = {root: fs.info(root)}
        elif fs.isdir(root):
            found = {
                p: info
                for p, info in fs.find(root, detail=True).items()
                if Path(p).suffix.lower() in IMAGE_SUFFIXES
            }
        elif glob.has_magic(root):
            found = {p: info for p, info in fs.glob(root, detail=True).items() if info.get("type") == "file"}
        else:
            found = {}
    except (OSError, ValueError, ImportError) as exc:
        raise DigitsError(f"cannot list {source}: {first_line(exc)}") from None
    return [(fs.unstrip_protocol(p), None, _object_stamp(found[p])) for p in sorted(found)]


def _object_stamp(info: dict) -> str:
    """An object's size and version as its store lists it (ETag, else modification time)."""
    version = next((info[k] for k in ("ETag", "etag", "mtime", "LastModified", "updated") if k in info), "")
    return f"{info.get('size')}:{version}"
