"""The raw-run contract, the bottom floor of ect: run keys and folders (layout), the CSV columns and timestamp
formats (columns), the manifest and its lifecycle (manifest), and atomic writes (atomic). It imports nothing
of ect but the error tree, and everything else imports it."""

from ect.raw.layout import RUN_FILES, RunKey, find_runs, signature
from ect.raw.manifest import Host, Manifest, Sensors, Window, read_manifest

__all__ = ["RUN_FILES", "Host", "Manifest", "RunKey", "Sensors", "Window", "find_runs", "read_manifest", "signature"]
