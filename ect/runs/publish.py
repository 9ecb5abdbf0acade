"""Publishing runs measured in scratch to the run store, once each; publish.json beside a run says whether the store
has it, and `ect publish` uploads the runs the store did not take (it was down), exactly once."""

from __future__ import annotations

import logging
from pathlib import Path

from ect.errors import StoreError
from ect.raw.atomic import read_json, write_json
from ect.raw.columns import now_utc
from ect.raw.layout import PUBLISH_FILE, RunKey, find_runs
from ect.raw.manifest import COMPLETED, FAILED, read_manifest
from ect.store import RunStore

log = logging.getLogger(__name__)


def publish_run(store: RunStore, folder: Path, key: RunKey) -> bool:
    """Publishes a finished run folder; records the outcome in publish.json. False (logged) when the store failed:
    the run stays complete here, marked unpublished."""
    try:
        uploaded = store.publish(folder, key)
    except StoreError as error:
        write_json(folder / PUBLISH_FILE, {"published": False, "store": repr(store), "error": str(error),
                                           "attempted_at": now_utc()})
        log.warning(f"{key} is not published: {error}; it stays in {folder} (`ect publish` uploads it later)")
        return False
    write_json(folder / PUBLISH_FILE, {"published": True, "store": repr(store), "published_at": now_utc()})
    log.info(f"{key} {'published to' if uploaded else 'was already in'} the run store {store!r}")
    return True


def unpublished(scratch: Path) -> list[Path]:
    """Finished runs in scratch that the store does not have yet (publish.json missing or saying not published)."""
    folders = []
    for folder in find_runs(scratch):
        manifest = read_manifest(folder)
        record = read_json(folder / PUBLISH_FILE) or {}
        if manifest is not None and manifest.status in (COMPLETED, FAILED) and not record.get("published"):
            folders.append(folder)
    return folders


def publish_all(store: RunStore, scratch: Path) -> list[tuple[RunKey, bool]]:
    """Publishes every unpublished finished run in scratch; (run, published) for each."""
    return [(RunKey.of_folder(folder), publish_run(store, folder, RunKey.of_folder(folder)))
            for folder in unpublished(scratch)]
