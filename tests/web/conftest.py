"""The browser fixture for page tests (see tests/web/browser.py)."""

from tests.web.browser import browser

__all__ = ["browser"]
