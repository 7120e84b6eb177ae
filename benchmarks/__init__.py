"""Performance scripts; each prints a table and can record it in RESULTS.md."""
