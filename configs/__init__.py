"""Reusable config pieces for experiments: pure functions returning dicts / ConfigDicts."""
