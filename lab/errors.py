"""The one exception the CLI turns into one clear sentence for the user."""

from __future__ import annotations

__all__ = ["LabError"]


class LabError(Exception):
    """Something the user can fix: the message says what happened and what to do."""
