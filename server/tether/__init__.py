"""Tether: keep an AI coding agent's working context across disconnects."""

from __future__ import annotations

__version__ = "0.1.0"
