"""The live batch dashboard: one page, fed by server-sent events from Redis."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
