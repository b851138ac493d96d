"""The console: an edition's bounces, the sender-health panel, a subscriber's history."""

from fastapi import APIRouter

router = APIRouter()
