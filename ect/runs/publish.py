"""Publishing runs measured in scratch to the run store, once each; publish.json beside a run says whether the store
has it, and `ect publish` uploads the runs the store did not take (it was down), exactly once. A run folder, or a
file of it, that is a symbolic link is never published (its target could be any file of the host)."""

from __future__ import annotations

import logging
from pathlib import Path

from ect.errors import StoreError
from ect.raw.atomic import read_json, write_json
from ect.raw.columns import now_utc
from ect.raw.layout import PUBLISH_FILE, RUN_FILES, RunKey, find_links, find_runs
from ect.raw.manifest import COMPLETED, FAILED, read_manifest
from ect.store import LinkNotPublished, RunStore

log = logging.getLogger(__name__)


def publish_run(store: RunStore, folder: Path, key: RunKey) -> bool:
    """Publishes a finished run folder; records the outcome in publish.json. False (logged) when the store failed:
    the run stays complete here, marked unpublished."""
    try:
        uploaded = store.publish(folder, key)
    except LinkNotPublished as error:
        log.error(f"{key} is not published: {error}")
        if not folder.is_symlink():  # nothing is written through a link
            write_json(folder / PUBLISH_FILE, {"published": False, "store": repr(store), "error": str(error),
                                               "attempted_at": now_utc()})
        return False
    except StoreError as error:
        write_json(folder / PUBLISH_FILE, {"published": False, "store": repr(store), "error": str(error),
                                           "attempted_at": now_utc()})
        log.warning(f"{key} is not published: {error}; it stays in {folder} (`ect publish` uploads it later)")
        return False
    write_json(folder / PUBLISH_FILE, {"published": True, "store": repr(store), "published_at": now_utc()})
    log.info(f"{key} {'published to' if uploaded else 'was already in'} the run store {store!r}")
    return True


def unpublished(scratch: Path) -> list[Path]:
    """Finished runs in scratch that the store does not have yet (publish.json missing or saying not published), and
    runs with a run file that is a symbolic link (publishing refuses them, naming the link)."""
    folders = []
    for folder in find_runs(scratch):
        manifest = read_manifest(folder)
        record = read_json(folder / PUBLISH_FILE) or {}
        linked = any((folder / name).is_symlink() for name in RUN_FILES)
        if (linked or manifest is not None and manifest.status in (COMPLETED, FAILED)) and not record.get("published"):
            folders.append(folder)
    return folders


def publish_all(store: RunStore, scratch: Path) -> list[tuple[str, bool]]:
    """Publishes every unpublished finished run in scratch; (run, published) for each. A symbolic link where an
    environment, architecture or run folder belongs is not followed: (its path under scratch, False), with an error."""
    results = [(RunKey.of_folder(folder).name, publish_run(store, folder, RunKey.of_folder(folder)))
               for folder in unpublished(scratch)]
    for link in find_links(scratch):
        log.error(f"{link} is a symbolic link: not published")
        results.append((link.relative_to(scratch).as_posix(), False))
    return results
