"""Statistics, reports and plots over the processed dataset."""
