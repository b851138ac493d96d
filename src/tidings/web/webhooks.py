"""/webhooks/{provider}: bounce and complaint events from sending providers."""

from fastapi import APIRouter

router = APIRouter()
