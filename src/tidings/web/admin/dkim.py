"""The console's DKIM keys page (admin only)."""

from fastapi import APIRouter

router = APIRouter()
