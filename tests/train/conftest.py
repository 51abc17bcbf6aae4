"""Fixtures of the tiny generated dataset and trained run (see tinyrun.py)."""
from tinyrun import tiny_root, tiny_run, tiny_run_copy  # noqa: F401
