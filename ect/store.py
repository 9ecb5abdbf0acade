"""The run store: where every GPU host publishes its completed run folders, and where the validation summary, the
processed dataset and the reports live for every worker and the UI. RUN_STORE is a path or an fsspec URL
(s3://bucket/prefix, gs://..., file:///shared/ect); without it METRICS_DIR and OUTPUT_DIR are the store and
nothing is copied.

In the store, as in METRICS_DIR: raw/<environment>/<architecture>/<run_id>/ (the run files, validation.json),
validation/, interim/, processed/; and reports/<name>/.

A host measures into METRICS_DIR/scratch/ (never over the network) and publishes each finished run folder: data
files first, manifest.json last, so that a reader sees a run only once it is complete. Publishing is idempotent.
Readers mirror the store into their METRICS_DIR (pull: only what changed; a mirrored file gets the store's
modification time, so that every worker's copy has the same signature and a verdict recorded by one worker holds
on all), work on local files, and push what they wrote.

A key listed from a store is data, never a path: every one is checked against the layout (ect.raw.layout.store_key);
any other key ("..", an absolute path, a backslash, an encoded or look-alike separator, a NUL, an over-long name, a
bad environment, architecture or run id, an unknown file) is logged as an error naming it and skipped, nothing is
written for it, and the valid keys of the same listing still arrive. Keys ect writes are built and checked by the
same rules. In a folder store no symbolic link is followed, on reading (a link is skipped with an error) or writing.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections import defaultdict
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ect.errors import StoreError, quoted
from ect.masking import mask, masked_url, url_secrets
from ect.raw.atomic import LinkRefused, NotAFile, open_regular, remove_stale_temporaries, temporary_name
from ect.raw.layout import (KEY_QUOTE_LIMIT, MANIFEST_FILE, RUN_FILES, VALIDATION_FILE, MetricsDir, RunKey, inside,
                            is_temporary_key, layout_key, run_file_key, store_key)

log = logging.getLogger(__name__)

DATA_FILES = tuple(name for name in RUN_FILES if name != MANIFEST_FILE)
_CHUNK = 1 << 20  # bytes copied at a time


class LinkNotPublished(StoreError):
    """A run folder, or a file of it, is a symbolic link: not published (its target could be any file of the host)."""


class _Refused(Exception):
    """A folder store's file that is a symbolic link, lies behind one, or is not a regular file: not read."""


def _skipped(key: str, why: str) -> None:
    log.error(f"run store key {quoted(key, KEY_QUOTE_LIMIT)} {why}: skipped, nothing written for it")


def _mtime_ns(info: dict) -> int:
    """A store file's modification time in ns (local files: mtime; object stores: LastModified)."""
    value = info.get("mtime", info.get("LastModified", info.get("last_modified", info.get("updated"))))
    if hasattr(value, "timestamp"):
        value = value.timestamp()
    if isinstance(value, str):
        from datetime import datetime

        value = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return round(float(value or 0) * 1e9)


@dataclass(frozen=True)
class Pulled:
    runs: int  # complete runs in the store
    files: int  # files downloaded because they were new or had changed
    bytes: int
    keys: frozenset[RunKey] = frozenset()  # the complete runs


class RunStore:
    def __init__(self, url: str, storage_options: dict | None = None):
        import fsspec

        self.url = url.rstrip("/")
        self.secrets = url_secrets(url)  # what every message about the store masks
        try:
            # A filesystem of its own: fsspec's cache would hand back one made with other credentials.
            self.fs, root = fsspec.core.url_to_fs(self.url, skip_instance_cache=True, **(storage_options or {}))
        except (ImportError, ValueError) as error:
            raise StoreError(f"RUN_STORE={masked_url(url)!r}: {mask(error, self.secrets)}") from None
        self.root = root.rstrip("/")
        self.local = type(self.fs).__name__ == "LocalFileSystem"

    def __repr__(self) -> str:
        return f"RunStore({masked_url(self.url)!r})"

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def _failed(self, what: str, error: Exception) -> StoreError:
        return StoreError(f"run store {masked_url(self.url)}: {what}: {type(error).__name__}: "
                          f"{mask(error, self.secrets)}")

    def check(self) -> str:
        """The store answers and takes a write (a probe file written, read back and deleted)."""
        probe = self.path(f".ect-probe-{os.getpid()}")
        try:
            self.fs.pipe_file(probe, b"ect")
            if self.fs.cat_file(probe) != b"ect":
                raise OSError("a written probe file read back differently")
            self.fs.rm_file(probe)
        except Exception as error:
            raise self._failed("not reachable or not writable", error) from None
        return f"{masked_url(self.url)} is reachable and writable"

    # --- writing -------------------------------------------------------------------------------------------

    def put(self, local: Path, relative: str) -> None:
        """Uploads one file whole under `relative`, a key of the store's layout (StoreError for any other): readers
        see the old file or the new one, never a part of it. The local file is read without following a link."""
        key = layout_key(relative)
        with _open_local_file(local) as source:
            if self.local:
                self._put_in_folder(source, key)
            else:
                self._upload(source, self.path(key))

    def _put_in_folder(self, source, key: str) -> None:
        """A shared folder: written beside its place, then renamed over it, through no link of the store; the
        temporaries a killed writer of this host left in that folder go first (ect.raw.atomic)."""
        *folders, name = key.split("/")
        folder = self._make_folders(folders)
        remove_stale_temporaries(Path(folder))
        tmp = os.path.join(folder, temporary_name(name))
        try:
            descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
            with os.fdopen(descriptor, "wb") as target:
                shutil.copyfileobj(source, target, _CHUNK)
            os.replace(tmp, os.path.join(folder, name))
        finally:
            with suppress(FileNotFoundError):
                os.unlink(tmp)

    def _make_folders(self, parts: list[str]) -> str:
        """The store's folder root/parts..., made where missing; StoreError when one is a symbolic link or a file."""
        os.makedirs(self.root, exist_ok=True)
        path = os.path.realpath(self.root)
        for part in parts:
            path = os.path.join(path, part)
            with suppress(FileExistsError):
                os.mkdir(path)
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                raise StoreError(f"run store {masked_url(self.url)}: {path} is a symbolic link or a file, not a "
                                 "folder: not followed")
        return path

    def _upload(self, source, target: str) -> None:
        """An object store's object, streamed from `source`; a failed upload is discarded, never committed in part."""
        remote = self.fs.open(target, "wb")
        try:
            shutil.copyfileobj(source, remote, _CHUNK)
        except BaseException:
            if hasattr(remote, "discard"):
                remote.discard()
            raise
        remote.close()

    def published(self, folder: Path, key: RunKey) -> bool:
        """Whether the store holds this run folder as it is here: the same manifest, data files of the same sizes."""
        try:
            if self._read(run_file_key(key, MANIFEST_FILE)) != (folder / MANIFEST_FILE).read_bytes():
                return False
            remote = self._find("/".join(("raw", *_parts(key))))
        except (FileNotFoundError, _Refused):
            return False
        sizes = {PurePosixPath(name).name: info["size"] for name, info in remote.items()}
        return all(sizes.get(name) == (folder / name).stat().st_size for name in DATA_FILES if (folder / name).exists())

    def publish(self, folder: Path, key: RunKey) -> bool:
        """Publishes a finished run folder (data files first, manifest last); False when it was published already.
        LinkNotPublished when the folder or one of its files is a symbolic link: nothing of it is published."""
        for path in (folder, *(folder / name for name in RUN_FILES)):
            if path.is_symlink():
                raise LinkNotPublished(f"{path} is a symbolic link: not published")
        try:
            if self.published(folder, key):
                return False
            for name in (*DATA_FILES, MANIFEST_FILE):
                if (folder / name).exists():
                    self.put(folder / name, run_file_key(key, name))
        except Exception as error:
            raise self._failed(f"publishing {key}", error) from None
        return True

    def push(self, local: Path, relative: str) -> None:
        try:
            self.put(local, relative)
        except Exception as error:
            raise self._failed(f"writing {relative}", error) from None

    def push_folder(self, local_dir: Path, relative: str) -> None:
        """Every file of local_dir (a report, a summary; hidden ones left out) to relative/ of the store; a file that
        has no place in the store's layout, or is a symbolic link, is left out with an error."""
        for name, path in _files(Path(local_dir)).items():
            key = f"{relative}/{name}"
            if path.is_symlink() or store_key(key) is None:
                why = "is a symbolic link" if path.is_symlink() else \
                    f"has no place in the run store's layout ({quoted(key, KEY_QUOTE_LIMIT)})"
                log.error(f"{path} {why}: not written to the run store {masked_url(self.url)}")
                continue
            self.push(path, key)

    # --- reading -------------------------------------------------------------------------------------------

    def _find(self, relative: str) -> dict[str, dict]:
        """{key relative to the store's root: info} of every file below relative/, keys as the store has them (not
        checked yet); {} when there is none. In a folder store, links and special files are left out with an error."""
        if self.local:
            return self._walk(relative)
        base = self.path(relative)
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return {}
        prefix = base.rstrip("/") + "/"
        return {f"{relative}/{p[len(prefix):]}": info for p, info in found.items()
                if info.get("type", "file") == "file" and p.startswith(prefix)}

    def _walk(self, relative: str) -> dict[str, dict]:
        """A folder store's files below relative/, found without following a symbolic link."""
        root = os.path.realpath(self.root)
        start = os.path.join(root, *relative.split("/"))
        if os.path.realpath(start) != start:  # relative/ itself, or a folder above it, is a link
            _skipped(relative, "is a symbolic link, or lies behind one: not followed")
            return {}
        found, folders = {}, [relative]
        while folders:
            folder = folders.pop()
            try:
                entries = list(os.scandir(os.path.join(root, *folder.split("/"))))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                key = f"{folder}/{entry.name}"
                if entry.is_symlink():
                    _skipped(key, "is a symbolic link: not followed")
                elif entry.is_dir(follow_symlinks=False):
                    folders.append(key)
                elif entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                    found[key] = {"type": "file", "size": info.st_size, "mtime": info.st_mtime}
                else:
                    _skipped(key, "is not a regular file")
        return found

    def _listing(self, relative: str) -> dict[str, dict]:
        """{path relative to `relative`: info} of every file below it whose key is of the store's layout; any other
        key is logged as an error naming it and left out (a folder store's temporaries quietly); {} when none."""
        listing = {}
        for key, info in sorted(self._find(relative).items()):
            if store_key(key) is not None:
                listing[key[len(relative) + 1:]] = info
            elif not is_temporary_key(key):
                _skipped(key, "is not a file of the run store's layout (ect/raw/layout.py)")
        return listing

    def _open_in_folder(self, key: str):
        """A folder store's file for reading: _Refused when it is a symbolic link, lies behind one, or is not a
        regular file (a FIFO would hang the reader)."""
        path = os.path.join(os.path.realpath(self.root), *key.split("/"))
        if os.path.realpath(path) != path:
            raise _Refused("lies behind a symbolic link: not followed")
        try:
            return open_regular(path)
        except LinkRefused:
            raise _Refused("is a symbolic link: not followed") from None
        except NotAFile:
            raise _Refused("is not a regular file: not read") from None

    def _read(self, key: str) -> bytes:
        if self.local:
            with self._open_in_folder(key) as handle:
                return handle.read()
        return self.fs.cat_file(self.path(key))

    def _get(self, key: str, info: dict, local: Path) -> None:
        """Downloads one file beside `local`, gives it the store's modification time, renames it into place."""
        local.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(local.parent, local.name)
        tmp = local.with_name(temporary_name(local.name))
        try:
            if self.local:
                with self._open_in_folder(key) as source, open(tmp, "wb") as target:
                    shutil.copyfileobj(source, target, _CHUNK)
            else:
                self.fs.get_file(self.path(key), str(tmp))
            mtime_ns = _mtime_ns(info)
            os.utime(tmp, ns=(mtime_ns, mtime_ns))
            os.replace(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)

    def _fetch(self, key: str, info: dict, local: Path, destination: Path) -> bool:
        """Mirrors the store's file `key` (checked) to `local` unless the copy there is current; whether it was
        downloaded. A local path that would lie outside `destination`, or a link in a folder store: an error,
        skipped."""
        if not inside(local, destination):
            _skipped(key, f"would be written to {local}, outside {destination}")
            return False
        if self._current(local, info):
            return False
        try:
            self._get(key, info, local)
        except _Refused as refused:
            _skipped(key, str(refused))
            return False
        return True

    @staticmethod
    def _current(local: Path, info: dict) -> bool:
        try:
            stat = local.stat()
        except FileNotFoundError:
            return False
        return stat.st_size == info["size"] and stat.st_mtime_ns == _mtime_ns(info)

    def pull_runs(self, raw: Path) -> Pulled:
        """Mirrors the store's complete runs (those with a manifest) into `raw`: new and changed files only, data
        files before the manifest, validation.json last."""
        order = {name: rank for rank, name in enumerate((*DATA_FILES, MANIFEST_FILE, VALIDATION_FILE))}
        raw = Path(raw)
        try:
            runs = defaultdict(dict)
            for name, info in self._listing("raw").items():
                key = store_key(f"raw/{name}")
                runs[key.run][key.name] = info
            complete = {run: files for run, files in runs.items() if MANIFEST_FILE in files}
            count = size = 0
            for run, files in sorted(complete.items()):
                for name in sorted(files, key=order.get):
                    if self._fetch(run_file_key(run, name), files[name], run.folder(raw) / name, raw):
                        size += files[name]["size"]
                        count += 1
        except Exception as error:
            raise self._failed("reading raw/", error) from None
        return Pulled(len(complete), count, size, frozenset(complete))

    def pull_tree(self, relative: str, local_dir: Path) -> int:
        """Mirrors relative/ of the store into local_dir exactly: new and changed files downloaded, files the store
        no longer has removed. Returns the number of files downloaded."""
        local_dir = Path(local_dir)
        try:
            remote = self._listing(relative)
            count = 0
            for name, info in sorted(remote.items()):
                try:
                    count += self._fetch(f"{relative}/{name}", info, local_dir.joinpath(*name.split("/")), local_dir)
                except FileNotFoundError:  # replaced by a writer since the listing (a stale sample part)
                    remote.pop(name)
        except Exception as error:
            raise self._failed(f"reading {relative}/", error) from None
        for name, path in _files(local_dir).items():
            if name not in remote:
                path.unlink()
        return count

    def reports(self) -> dict[str, float]:
        """{report name: modification time} of the reports/<name>/report.html in the store."""
        listing = self._listing("reports")
        return {name.split("/")[0]: _mtime_ns(info) / 1e9 for name, info in listing.items()
                if name.count("/") == 1 and name.endswith("/report.html")}

    def read_text(self, relative: str) -> str:
        """A file of the store's layout, as text (StoreError for any other key, or a link in a folder store)."""
        try:
            return self._read(layout_key(relative)).decode()
        except _Refused as refused:
            raise StoreError(f"run store {masked_url(self.url)}: {quoted(relative, KEY_QUOTE_LIMIT)} "
                             f"{refused}") from None
        except Exception as error:
            raise self._failed(f"reading {quoted(relative, KEY_QUOTE_LIMIT)}", error) from None


def _parts(key: RunKey) -> tuple[str, str, str]:
    return key.environment, key.architecture, key.run_id


def _open_local_file(path: Path):
    """A local file to upload, opened without following a link: StoreError naming it when it is a symbolic link or
    not a regular file."""
    try:
        return open_regular(path)
    except LinkRefused:
        raise StoreError(f"{path} is a symbolic link: not written to the run store") from None
    except NotAFile:
        raise StoreError(f"{path} is not a regular file: not written to the run store") from None


def _files(folder: Path) -> dict[str, Path]:
    """{relative posix path: path} of the files below folder, leaving out hidden ones (locks, temporary files)."""
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)}


def open_store(url: str | None, storage_options: dict | None = None) -> RunStore | None:
    """The configured store (RUN_STORE), or None when METRICS_DIR is the store."""
    return RunStore(url, storage_options) if url else None


def pull_outputs(store: RunStore, metrics: MetricsDir, samples: bool = True) -> None:
    """The processed dataset of the store and (samples) its interim samples, into METRICS_DIR: only the files that
    changed (a nightly aggregation adds one part of samples)."""
    if samples:
        store.pull_tree("interim", metrics.interim)
    store.pull_tree("processed", metrics.processed.parent)


def push_outputs(store: RunStore, metrics: MetricsDir) -> None:
    """What an aggregation wrote, into the store: new sample parts (named by their content), then the index and the
    processed dataset, then the removal of parts no run uses any more (readers of the older index keep theirs
    until then)."""
    parts = store._listing("interim/samples.parquet")
    local_parts = _files(metrics.samples)
    for name, path in local_parts.items():
        if name not in parts:
            store.push(path, f"interim/samples.parquet/{name}")
    store.push(metrics.interim / "index.json", "interim/index.json")
    store.push_folder(metrics.processed.parent, "processed")
    for name in sorted(set(parts) - set(local_parts)):
        store.fs.rm_file(store.path("interim/samples.parquet", name))
