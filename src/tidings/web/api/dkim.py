"""/dkim-keys: DKIM signing keys (admin tokens only)."""

from fastapi import APIRouter

router = APIRouter()
