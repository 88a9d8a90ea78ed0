"""Texts shared by modules that must not import each other (auth is loaded by DRF settings)."""

from __future__ import annotations

UNAUTHORIZED_MESSAGE = "Valid API key required. Set Authorization: Bearer <key> header."
