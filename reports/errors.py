"""What reports/ raises when a run dir cannot be reported on: one sentence for the user."""

from __future__ import annotations

__all__ = ["ReportError", "UnusableRunDir"]


class ReportError(Exception):
    """Something the user can fix; the message says what happened and what to do."""


class UnusableRunDir(ReportError):
    """The folder is no run dir this code can read (no meta.json, or a format it does not know)."""
