"""Writing files so that a crash never leaves one that looks complete: write a temporary sibling, flush it to
the disk, then rename it over the target (a rename within a folder is atomic).

Temporaries are named ".NAME.tmp-<host>-<pid>[.suffix]". A failing write (a full disk included) deletes its own;
one left by a process that was killed mid-write is deleted by the next write of the same file on the same host
(remove_stale_temporaries), so nothing accumulates.

Reading run files (read_bytes, read_text, read_json) never follows a symbolic link: a run folder is written by other
hosts and people, and a link in it could point at any file of the reading machine."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import socket
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

HOST = socket.gethostname()
_TEMPORARY = re.compile(r"\.tmp-(?P<host>.+)-(?P<pid>\d+)(?:\.[^.-]*)?$")


def temporary_name(name: str, suffix: str = "") -> str:
    """The name of this process's temporary for NAME: ".NAME.tmp-<host>-<pid><suffix>"."""
    return f".{name}.tmp-{HOST}-{os.getpid()}{suffix}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(folder: Path, name: str = "*") -> list[Path]:
    """Deletes the temporaries of NAME (default: any) in `folder` whose process, on this host, is gone: what a
    kill or a crash mid-write left. Temporaries of live processes and of other hosts are left alone."""
    removed = []
    for path in Path(folder).glob(f".{name}.tmp-*"):
        match = _TEMPORARY.search(path.name)
        if match is None or match["host"] != HOST or _alive(int(match["pid"])):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary sibling of `path` (same suffix, e.g. for Keras' .keras) for the block to write; renamed over
    `path` when the block ends without error, deleted when it raises (a full disk too)."""
    path = Path(path)
    remove_stale_temporaries(path.parent, path.stem)
    tmp = path.with_name(temporary_name(path.stem, path.suffix))
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        if error.errno is not None and error.filename is None:  # a write or fsync refused (a full disk): say of what
            error.filename = str(path)
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: Path, data: Any, indent: int = 2) -> Path:
    return write_text(path, json.dumps(data, indent=indent, default=str) + "\n")


class LinkRefused(OSError):
    """A file ect reads is a symbolic link: its target is never read (it may be any file of the machine)."""


class NotAFile(OSError):
    """A file ect reads is not a regular file (a folder, a FIFO, a device): it is not read."""


def is_link(path: Path) -> bool:
    return os.path.islink(path)


def open_regular(path: Path):
    """The regular file at `path` opened for binary reading, never through a symbolic link: LinkRefused when `path` is
    one (the link itself, not a folder above it: callers check those), NotAFile when it is a folder, a FIFO or a
    device (opened without blocking, so a FIFO never hangs the reader); FileNotFoundError when it is missing."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        if error.errno == errno.ELOOP and os.path.islink(path):
            raise LinkRefused(f"{Path(path).name} is a symbolic link: not read") from None
        raise
    handle = os.fdopen(descriptor, "rb")
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        handle.close()
        raise NotAFile(f"{Path(path).name} is not a regular file: not read")
    return handle


def read_bytes(path: Path) -> bytes:
    """The bytes of the regular file at `path`, read as open_regular opens it."""
    with open_regular(path) as handle:
        return handle.read()


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """read_bytes, decoded (UnicodeDecodeError when it is not text of `encoding`)."""
    return read_bytes(path).decode(encoding)


def read_json(path: Path) -> dict | None:
    """A JSON object from `path`; None when the file is missing, unreadable, a symbolic link, not JSON or not an
    object."""
    try:
        data = json.loads(read_bytes(path))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class FolderInUse(OSError):
    """Another process holds the folder's lock."""


@contextmanager
def exclusive(lock_file: Path, purpose: str) -> Iterator[None]:
    """Holds LOCK_FILE (an advisory lock the OS releases when the process ends, even when killed) for the block;
    FolderInUse, naming the holder, when another process holds it."""
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    try:  # never through a link: the holder's line would be written into its target
        descriptor = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as error:
        if error.errno == errno.ELOOP and os.path.islink(lock_file):
            raise LinkRefused(f"{lock_file} is a symbolic link: not used as a lock") from None
        raise
    with os.fdopen(descriptor, "r+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise FolderInUse(f"{lock_file} is held by {holder}") from None
            raise
        handle.seek(0)
        handle.truncate()
        handle.write(f"{purpose}, pid {os.getpid()} on {HOST}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
