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
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ect.config.secrets import mask_url as mask
from ect.errors import StoreError
from ect.raw.atomic import remove_stale_temporaries, temporary_name
from ect.raw.layout import MANIFEST_FILE, RUN_FILES, VALIDATION_FILE, MetricsDir, RunKey

log = logging.getLogger(__name__)

DATA_FILES = tuple(name for name in RUN_FILES if name != MANIFEST_FILE)


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


class RunStore:
    def __init__(self, url: str, storage_options: dict | None = None):
        import fsspec

        self.url = url.rstrip("/")
        try:
            # A filesystem of its own: fsspec's cache would hand back one made with other credentials.
            self.fs, root = fsspec.core.url_to_fs(self.url, skip_instance_cache=True, **(storage_options or {}))
        except (ImportError, ValueError) as error:
            raise StoreError(f"RUN_STORE={mask(url)!r}: {error}") from None
        self.root = root.rstrip("/")
        self.local = type(self.fs).__name__ == "LocalFileSystem"

    def __repr__(self) -> str:
        return f"RunStore({mask(self.url)!r})"

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def _failed(self, what: str, error: Exception) -> StoreError:
        return StoreError(f"run store {mask(self.url)}: {what}: {type(error).__name__}: {mask(str(error))}")

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
        return f"{mask(self.url)} is reachable and writable"

    # --- writing -------------------------------------------------------------------------------------------

    def put(self, local: Path, relative: str) -> None:
        """Uploads one file whole: readers see the old file or the new one, never a part of it."""
        target = self.path(relative)
        if self.local:  # a shared folder: write beside, then rename (object stores replace objects whole)
            self.fs.makedirs(str(PurePosixPath(target).parent), exist_ok=True)
            tmp = f"{PurePosixPath(target).parent}/{temporary_name(PurePosixPath(target).name)}"
            self.fs.put_file(str(local), tmp)
            self.fs.mv(tmp, target)
        else:
            self.fs.put_file(str(local), target)

    def published(self, folder: Path, key: RunKey) -> bool:
        """Whether the store holds this run folder as it is here: the same manifest, data files of the same sizes."""
        remote = self.path("raw", *_parts(key))
        try:
            if self.fs.cat_file(f"{remote}/{MANIFEST_FILE}") != (folder / MANIFEST_FILE).read_bytes():
                return False
            sizes = {PurePosixPath(p).name: info["size"] for p, info in self.fs.find(remote, detail=True).items()}
        except FileNotFoundError:
            return False
        return all(sizes.get(name) == (folder / name).stat().st_size for name in DATA_FILES if (folder / name).exists())

    def publish(self, folder: Path, key: RunKey) -> bool:
        """Publishes a finished run folder (data files first, manifest last); False when it was published already."""
        try:
            if self.published(folder, key):
                return False
            for name in (*DATA_FILES, MANIFEST_FILE):
                if (folder / name).exists():
                    self.put(folder / name, "/".join(("raw", *_parts(key), name)))
        except Exception as error:
            raise self._failed(f"publishing {key}", error) from None
        return True

    def push(self, local: Path, relative: str) -> None:
        try:
            self.put(local, relative)
        except Exception as error:
            raise self._failed(f"writing {relative}", error) from None

    def push_folder(self, local_dir: Path, relative: str) -> None:
        """Every file of local_dir (a report, a summary; hidden ones left out) to relative/ of the store."""
        for name, path in _files(Path(local_dir)).items():
            self.push(path, f"{relative}/{name}")

    # --- reading -------------------------------------------------------------------------------------------

    def _listing(self, relative: str) -> dict[str, dict]:
        """{path relative to `relative`: info} of every file below it; {} when there is none."""
        base = self.path(relative)
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return {}
        prefix = base.rstrip("/") + "/"
        return {p[len(prefix):]: info for p, info in found.items()
                if info.get("type", "file") == "file" and p.startswith(prefix)}

    def _get(self, relative: str, info: dict, local: Path) -> int:
        """Downloads one file beside `local`, gives it the store's modification time, renames it into place."""
        local.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(local.parent, local.name)
        tmp = local.with_name(temporary_name(local.name))
        try:
            self.fs.get_file(self.path(relative), str(tmp))
            mtime_ns = _mtime_ns(info)
            os.utime(tmp, ns=(mtime_ns, mtime_ns))
            os.replace(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)
        return info["size"]

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
        try:
            runs = defaultdict(dict)
            for name, info in self._listing("raw").items():
                parts = name.split("/")
                if len(parts) == 4 and parts[3] in order:
                    runs[tuple(parts[:3])][parts[3]] = info
            complete = {run: files for run, files in runs.items() if MANIFEST_FILE in files}
            count = size = 0
            for run, files in sorted(complete.items()):
                for name in sorted(files, key=order.get):
                    local = Path(raw, *run, name)
                    if not self._current(local, files[name]):
                        size += self._get("/".join(("raw", *run, name)), files[name], local)
                        count += 1
        except Exception as error:
            raise self._failed("reading raw/", error) from None
        return Pulled(len(complete), count, size)

    def pull_tree(self, relative: str, local_dir: Path) -> int:
        """Mirrors relative/ of the store into local_dir exactly: new and changed files downloaded, files the store
        no longer has removed. Returns the number of files downloaded."""
        local_dir = Path(local_dir)
        try:
            remote = self._listing(relative)
            count = 0
            for name, info in sorted(remote.items()):
                local = local_dir / name
                if not self._current(local, info):
                    try:
                        self._get(f"{relative}/{name}", info, local)
                    except FileNotFoundError:  # replaced by a writer since the listing (a stale sample part)
                        remote.pop(name)
                        continue
                    count += 1
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
        try:
            return self.fs.cat_file(self.path(relative)).decode()
        except Exception as error:
            raise self._failed(f"reading {relative}", error) from None


def _parts(key: RunKey) -> tuple[str, str, str]:
    return key.environment, key.architecture, key.run_id


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
    for path in _files(metrics.processed.parent).values():
        store.push(path, f"processed/{path.name}")
    for name in sorted(set(parts) - set(local_parts)):
        store.fs.rm_file(store.path("interim/samples.parquet", name))
