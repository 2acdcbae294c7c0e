"""What `digits predict` and `digits batch` read: the listing rule and the fetching of URIs.

A folder gives its image files (by suffix, :data:`IMAGE_SUFFIXES`) sorted by path, walked as
``rglob`` walks it; a folder that cannot be read becomes an error of its own. This order is what
makes `digits batch` answer bit for bit as `digits predict` does: both list inputs here.
Globs and URIs (``s3://bucket/scans/``, read with fsspec, which comes with the ``batch`` extra)
are for `digits batch`.
"""

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


def list_inputs(source: str) -> list[tuple[str, str | None]]:
    """The inputs under ``source`` (a folder, a glob or a URI), sorted, as `digits predict` orders them.

    Each is a path or URI and, where listing already found it unreadable, why.
    """
    has_magic = glob.has_magic(source)
    if "://" in source:
        import fsspec

        try:
            fs, root = fsspec.core.url_to_fs(source)
            if has_magic:
                found = [p for p in fs.glob(root) if fs.isfile(p)]
            elif fs.isdir(root):
                found = [p for p in fs.find(root) if Path(p).suffix.lower() in IMAGE_SUFFIXES]
            else:
                found = [root] if fs.exists(root) else []
        except (OSError, ValueError, ImportError) as exc:
            raise DigitsError(f"cannot list {source}: {first_line(exc)}") from None
        entries = [(fs.unstrip_protocol(p), None) for p in sorted(found)]
    elif has_magic:
        found = sorted(Path(p) for p in glob.glob(source, recursive=True))
        entries = [(str(p), None) for p in found if p.is_file()]
    else:
        if not os.path.lexists(source):
            raise DigitsError(f"{source}: no such file or folder")
        entries = [(str(path), None if error is None else str(error)) for path, error in expand([source])]
        if len(entries) == 1 and entries[0][1] is not None:
            raise DigitsError(entries[0][1])
    if not entries:
        raise DigitsError(f"{source} matches no files")
    return entries
