"""Ownership records: which step wrote an output folder, and whether it may replace it.

A step's folder carries a record, :data:`MARK` (``.written-by``, JSON), naming the step and the
sha256 of every file it wrote. :func:`check_owned` reads it, and the step's own older files
(its manifest, a :data:`Proof`), to decide whether a folder holds only what the step wrote,
unchanged: only then may :func:`digits_core.atomic.atomic_dir` replace it. Files found in a
folder are read without trust: links are never followed, pipes and devices never opened.
"""

import hashlib
import json
import os
import stat
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from digits_core.errors import DigitsError

MARK = ".written-by"
"""The file in an output folder recording which step wrote it and what it put there (JSON)."""

RECORD_FORMAT = 2
"""Records of this format vouch for content: ``{"format": 2, "step": STEP, "files": [top-level
names], "sha256": {path inside the folder: sha256 of its bytes}}``. The previous format had no
``format`` and no ``sha256`` (names only); its ``step`` and ``files`` are kept as they were, so
that older versions still read a new record."""

_RECORD_LIMIT = 64 * 2**20  # a record larger than this was not written by a step

Proof = Mapping[str, str] | Collection[str]
"""What a step's own older files vouch for in a folder: the sha256 of each file by its path
inside the folder (a proof of content), or, from steps that keep no checksums, bare names."""


def write_record(folder: Path, step: str) -> None:
    """Write the record of ``step`` into ``folder``: its top-level names and the sha256 of every file."""
    record = {
        "format": RECORD_FORMAT,
        "step": step,
        "files": sorted(p.name for p in folder.iterdir()),
        "sha256": _hash_tree(folder),
    }
    (folder / MARK).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _hash_tree(folder: Path) -> dict[str, str]:
    """The sha256 of every regular file under ``folder``, by its path inside it (``a/b.csv``).

    Links are not followed and anything but a regular file or folder is left out (never opened).
    """
    hashes = {}
    for top, folders, files in os.walk(folder):
        folders.sort()
        for name in sorted(files):
            path = Path(top, name)
            digest = file_sha256(path)
            if digest is not None:
                hashes[path.relative_to(folder).as_posix()] = digest
    return hashes


def file_sha256(path: str | os.PathLike) -> str | None:
    """The hex sha256 of the regular file at ``path``; None for a link, pipe, device or folder.

    It never follows a link and never blocks: a pipe or device is not opened at all.
    """
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the lstat
            return None
        return hashlib.file_digest(fh, "sha256").hexdigest()


def read_json(path: str | os.PathLike) -> Any:
    """The JSON value in ``path``, or None when it is missing, not a regular file or not JSON (for
    records a step may find). A pipe or device is never read: it could block or never end."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        try:
            return json.loads(fh.read())
        except (OSError, ValueError):
            return None


class _NotARecord(Exception):
    """The record's name is taken by a link, pipe, device or folder, which proves nothing."""


def _read_record(folder: Path) -> dict | None:
    """The record in ``folder`` as ``{"step", "files", "sha256"}`` (``sha256`` None for the previous
    format), or None when there is none or it is not one.

    Raises :class:`_NotARecord` when :data:`MARK` is there but is not a regular file: it is never
    opened (a pipe would block, a device could answer anything) and never followed (a link to a
    real record elsewhere vouches for that folder, not this one).
    """
    path = folder / MARK
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise _NotARecord
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError:
        raise _NotARecord from None  # a link swapped in since the lstat (ELOOP), or unreadable
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _NotARecord  # swapped for something else since the lstat
        if os.fstat(fd).st_size > _RECORD_LIMIT:
            return None
        try:
            record = json.loads(fh.read())
        except (OSError, ValueError):
            return None
    if not isinstance(record, dict) or not isinstance(record.get("step"), str):
        return None
    files = record.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return None
    hashes = record.get("sha256")
    content = record.get("format") == RECORD_FORMAT and isinstance(hashes, dict)
    if content and not all(isinstance(k, str) and isinstance(v, str) for k, v in hashes.items()):
        return None
    return {"step": record["step"], "files": files, "sha256": hashes if content else None}


def written_by(folder: str | os.PathLike) -> dict | None:
    """The step that wrote ``folder`` and the entries it put there (``{"step", "files"}``), from its
    record; None if it has none, or if the record is a link, a pipe or anything but a regular file."""
    try:
        record = _read_record(Path(folder))
    except _NotARecord:
        return None
    return None if record is None else {"step": record["step"], "files": record["files"]}


def check_owned(
    target: Path,
    step: str,
    added_later: Collection[str],
    legacy: Callable[[Path], Proof] | None,
) -> None:
    """Raise a :class:`DigitsError` unless ``step`` may replace the folder ``target`` whole.

    It may when ``target`` is missing or empty, or holds only what the record (or, for a folder
    without a record of content, ``legacy(target)``) vouches for, unchanged; see
    :func:`digits_core.atomic.atomic_dir`, which calls it under the folder's lock. An unreadable
    entry raises the ``OSError``.
    """
    if not target.exists():
        return
    if not target.is_dir():
        raise DigitsError(f"{target} exists and is not a folder: choose another output folder")
    present = sorted(p.name for p in target.iterdir())
    if not present:
        return
    try:
        record = _read_record(target)
    except _NotARecord:
        raise DigitsError(
            f"{target / MARK} is a link, pipe or other non-regular file, which proves nothing, so `{step}` "
            f"will not replace {target}: remove it if {target} is yours to lose, "
            "or choose another output folder"
        ) from None
    if record is not None and record["step"] != step:
        raise DigitsError(
            f"{target} was written by `{record['step']}`, not `{step}`, so it will not replace it: "
            "choose another output folder"
        )
    # Anything but plain files and folders is not a step's: refused before any older file is read.
    kinds = {name: os.lstat(target / name).st_mode for name in present}
    plain = {name for name, mode in kinds.items() if stat.S_ISREG(mode) or stat.S_ISDIR(mode)}
    strangers = [name for name in present if name != MARK and name not in plain]
    if record is None and MARK in present:
        strangers.append(MARK)  # not a record (a step writes its record whole, in its scratch folder)
    if record is not None and record["sha256"] is not None:
        vouched: dict[str, str | None] = dict(record["sha256"])
        folders = set(record["files"])
        later = [n for n in added_later if n in present and n not in vouched]
        if later and legacy is not None and not strangers:
            proof = _proof(legacy, target)
            vouched |= {n: proof[n] for n in later if n in proof}
    elif strangers:
        vouched, folders = {}, set()
    else:
        proof = _proof(legacy, target) if legacy is not None else {}
        if record is not None and not proof:
            raise DigitsError(
                f"{target} has a record of an older version, which lists names but not contents, so `{step}` "
                f"cannot tell its files from a user's and will not replace it: delete {target} yourself "
                "if nothing in it is needed, or choose another output folder"
            )
        vouched, folders = proof, {path.split("/")[0] for path in proof}
    changed = []
    for name in present:
        if name == MARK or name in strangers:
            continue
        verdict = _vouched_for(target, name, stat.S_ISDIR(kinds[name]), vouched, folders)
        if verdict == "stranger":
            strangers.append(name)
        elif verdict == "changed":
            changed.append(name)
    if strangers:
        raise DigitsError(
            f"{target} holds files `{step}` did not write ({_some(sorted(strangers))}), so it will not "
            "replace it: move them out or choose a new or empty output folder"
        )
    if changed:
        raise DigitsError(
            f"{target} holds files changed since `{step}` wrote them ({_some(changed)}), so it will not "
            "replace it: move them out (or delete them if they are not needed) or choose another "
            "output folder"
        )


def _proof(legacy: Callable[[Path], Proof], folder: Path) -> dict[str, str | None]:
    """What ``legacy`` vouches for in ``folder``, as sha256 by path (None: trusted by name)."""
    proof = legacy(folder)
    if isinstance(proof, Mapping):
        return dict(proof)
    return dict.fromkeys(proof)


def _vouched_for(
    target: Path, name: str, is_dir: bool, vouched: Mapping[str, str | None], folders: Collection[str]
) -> str:
    """Whether the entry ``name`` of ``target`` is what ``vouched`` says: "ok", "changed" or "stranger"."""
    if name in vouched and vouched[name] is None:
        return "ok"  # trusted by name (an older folder of a step that keeps no checksums)
    if not is_dir:
        if name not in vouched:
            return "stranger"
        return "ok" if file_sha256(target / name) == vouched[name] else "changed"
    if name not in folders:
        return "stranger"
    verdict = "ok"
    for top, subfolders, files in os.walk(target / name, onerror=_raise):  # unreadable: not vouched for
        for entry in (*files, *subfolders):
            path = Path(top, entry)
            inside = path.relative_to(target).as_posix()
            mode = os.lstat(path).st_mode
            if stat.S_ISDIR(mode):
                continue
            if not stat.S_ISREG(mode) or inside not in vouched:
                return "stranger"
            if file_sha256(path) != vouched[inside]:
                verdict = "changed"
    return verdict


def _raise(exc: OSError) -> None:
    raise exc


def _some(names: list[str]) -> str:
    """The first three of ``names``, and "..." when there are more."""
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
