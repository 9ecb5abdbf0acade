"""Raw run folders -> interim samples -> processed runs; the legacy importer and exports."""
