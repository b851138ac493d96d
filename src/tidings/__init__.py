"""Tidings: a self-hosted newsletter and daily-digest service."""

__version__ = "0.1.0"
