"""Bundle archives: a safe streaming reader and a deterministic writer.

The reader never extracts to disk and never trusts the archive: it decompresses as a stream
through a byte counter, so neither a zip bomb nor a forged header size can make it hold more
than the configured limit in memory, and it accepts only regular files and directories with
relative, `..`-free paths. The writer produces byte-identical archives for identical
inputs (sorted entries, fixed mtimes and owners, gzip header without time or name), so a
bundle's sha256 identifies its content.
"""

from __future__ import annotations

import gzip
import io
import posixpath
import tarfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol

MB = 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
MAX_LISTED_ERRORS = 20
# Tar framing around member data: a header block, an optional pax/GNU long-name header and
# up to a block of padding per member, plus the end-of-archive blocks and record padding.
_FRAMING_PER_MEMBER = 4 * tarfile.BLOCKSIZE
_FRAMING_FIXED = 64 * tarfile.RECORDSIZE
# Directories and caches never shipped in a bundle built from a folder.
EXCLUDED_DIRS = frozenset(
    {"__pycache__", ".git", ".ipynb_checkpoints", ".mypy_cache", ".pytest_cache", ".ruff_cache",
     ".venv"}
)  # fmt: skip
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
EXCLUDED_FILES = frozenset({".DS_Store"})


@dataclass(frozen=True)
class ArchiveLimits:
    """What a bundle may contain. `max_bytes` bounds both the compressed archive and the
    total uncompressed size of its files; `max_files` bounds the number of files."""

    max_bytes: int = 50 * MB
    max_files: int = 500

    def describe_bytes(self) -> str:
        return f"{self.max_bytes / MB:g} MB" if self.max_bytes >= MB else f"{self.max_bytes} B"


@dataclass
class ArchiveContents:
    """The regular files of an archive (path → bytes) and why it is unsafe, if it is."""

    files: dict[str, bytes] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class _LimitExceeded(Exception):
    """Raised inside the stream to stop reading at once; carries the readable reason."""


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _CountingReader:
    """A read-only stream that refuses to deliver more than `cap` bytes in total."""

    def __init__(self, raw: _Readable, cap: int, reason: str) -> None:
        self._raw = raw
        self._cap = cap
        self._reason = reason
        self._count = 0

    def read(self, size: int = -1) -> bytes:
        allowed = self._cap - self._count + 1
        chunk = self._raw.read(allowed if size is None or size < 0 else min(size, allowed))
        self._count += len(chunk)
        if self._count > self._cap:
            raise _LimitExceeded(self._reason)
        return chunk


def read_archive(data: bytes, limits: ArchiveLimits) -> ArchiveContents:
    """Read a .tar.gz bundle into memory, checking every member before its data."""
    contents = ArchiveContents()
    if len(data) > limits.max_bytes:
        contents.errors.append(
            f"archive too large: {len(data)} bytes; the limit is {limits.describe_bytes()}"
        )
        return contents
    if not data.startswith(GZIP_MAGIC):
        hint = " (this looks like a zip file)" if data.startswith(ZIP_MAGIC) else ""
        contents.errors.append(f"not a gzip-compressed tar archive{hint}: upload a .tar.gz")
        return contents
    cap = limits.max_bytes + limits.max_files * _FRAMING_PER_MEMBER + _FRAMING_FIXED
    reason = f"archive expands beyond the limit of {limits.describe_bytes()} uncompressed"
    stream = _CountingReader(gzip.GzipFile(fileobj=io.BytesIO(data)), cap, reason)
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
            _read_members(tar, limits, contents)
    except _LimitExceeded as error:
        contents.errors.append(str(error))
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        contents.errors.append(f"not a valid tar.gz archive: {error or type(error).__name__}")
    if len(contents.errors) > MAX_LISTED_ERRORS:
        hidden = len(contents.errors) - MAX_LISTED_ERRORS
        contents.errors[MAX_LISTED_ERRORS:] = [f"... and {hidden} more unsafe entries"]
    return contents


def _read_members(tar: tarfile.TarFile, limits: ArchiveLimits, contents: ArchiveContents) -> None:
    total = 0
    for member in tar:
        name, problem = _safe_name(member)
        if problem:
            contents.errors.append(problem)
            continue
        if name is None or member.isdir():
            continue
        if name in contents.files:
            contents.errors.append(f"{name}: appears more than once in the archive")
            continue
        if len(contents.files) + 1 > limits.max_files:
            raise _LimitExceeded(f"too many files: more than the limit of {limits.max_files}")
        total += member.size
        if total > limits.max_bytes:
            raise _LimitExceeded(
                f"files too large: more than {limits.describe_bytes()} uncompressed "
                f"(reached at {name})"
            )
        extracted = tar.extractfile(member)
        contents.files[name] = extracted.read() if extracted is not None else b""


def _safe_name(member: tarfile.TarInfo) -> tuple[str | None, str | None]:
    """(normalised relative path or None for the root entry, problem or None)."""
    raw = member.name
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        return None, f"{raw}: absolute paths are not allowed in a bundle"
    if "\\" in raw:
        return None, f"{raw}: backslashes are not allowed in bundle paths"
    if ".." in PurePosixPath(raw).parts:
        return None, f"{raw}: '..' is not allowed in bundle paths"
    kind = _unsupported_kind(member)
    if kind:
        return None, f"{raw}: is a {kind}; only regular files and directories are allowed"
    name = posixpath.normpath(raw)
    return (None if name == "." else name), None


def _unsupported_kind(member: tarfile.TarInfo) -> str | None:
    if member.issym():
        return f"symbolic link (to {member.linkname})"
    if member.islnk():
        return f"hard link (to {member.linkname})"
    if member.ischr() or member.isblk():
        return "device file"
    if member.isfifo():
        return "named pipe"
    if member.issparse():
        return "sparse file"
    if not (member.isfile() or member.isdir()):
        return f"tar entry of type {member.type!r}"
    return None


class DirectoryError(ValueError):
    """A folder cannot be packaged; `problems` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def collect_directory(root: Path, limits: ArchiveLimits) -> dict[str, bytes]:
    """The files of a bundle folder (relative posix path → bytes), caches excluded.

    Symbolic links and special files are refused rather than followed, so a folder packages
    exactly what the trigger will accept; the limits stop the walk before reading a folder
    that could never be uploaded.
    """
    if not root.is_dir():
        raise DirectoryError([f"{root}: not a directory"])
    problems: list[str] = []
    paths: list[tuple[str, Path]] = []
    total = 0
    for relative, path in _walk(root, root, problems):
        paths.append((relative, path))
        total += path.stat().st_size
    if len(paths) > limits.max_files:
        problems.append(f"too many files: {len(paths)}; the limit is {limits.max_files}")
    if total > limits.max_bytes:
        problems.append(f"files too large: {total} bytes; the limit is {limits.describe_bytes()}")
    if problems:
        raise DirectoryError(problems)
    return {relative: path.read_bytes() for relative, path in sorted(paths)}


def _walk(root: Path, folder: Path, problems: list[str]) -> Iterator[tuple[str, Path]]:
    for path in sorted(folder.iterdir()):
        relative = path.relative_to(root).as_posix()
        if path.is_symlink():
            problems.append(f"{relative}: symbolic links are not packaged; copy the file instead")
        elif path.is_dir():
            if path.name not in EXCLUDED_DIRS:
                yield from _walk(root, path, problems)
        elif not path.is_file():
            problems.append(f"{relative}: not a regular file")
        elif path.name not in EXCLUDED_FILES and not path.name.endswith(EXCLUDED_SUFFIXES):
            yield relative, path


def write_archive(files: Mapping[str, bytes]) -> bytes:
    """A deterministic .tar.gz of `files`: same input, same bytes, same sha256."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(files[name]))
    return buffer.getvalue()
