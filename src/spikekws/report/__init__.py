"""Run reports: HTML page with plots (``spikekws report``), run comparison tables
(``spikekws compare``) and activity recording of spiking layers."""
from __future__ import annotations

__all__ = ["write_html_report", "compare_runs", "record_activity"]


def __getattr__(name: str):  # keep ``import spikekws.report`` light (no matplotlib/torch work)
    if name == "write_html_report":
        from .html import write_html_report
        return write_html_report
    if name == "compare_runs":
        from .compare import compare_runs
        return compare_runs
    if name == "record_activity":
        from .record import record_activity
        return record_activity
    raise AttributeError(name)
