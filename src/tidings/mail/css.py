"""CSS inlining for mail: premailer, with nothing ever fetched from the network."""

import logging
from typing import Any

import cssutils
from premailer import Premailer


def _never_fetch(url: str) -> None:
    """cssutils' fetcher for @import: nothing is ever fetched (the rule is dropped)."""
    return None


class _OfflinePremailer(Premailer):  # type: ignore[misc]
    """premailer's ``allow_network=False`` covers <link> only: cssutils still fetched every
    ``@import`` URL of a <style> block. Its parser here gets a fetcher that never fetches."""

    def _parse_css_string(self, css_body: str, validate: bool = True) -> Any:
        return cssutils.CSSParser(fetcher=_never_fetch, validate=validate).parseString(css_body)


def inline_css(html: str) -> str:
    """Inline the <style> rules into the markup; media queries stay in a <style> block.
    Nothing is fetched from the network (<link> or @import)."""
    return str(
        _OfflinePremailer(
            html,
            allow_network=False,
            disable_validation=True,
            cssutils_logging_level=logging.CRITICAL,
            remove_classes=False,
            keep_style_tags=False,
            strip_important=False,
        ).transform()
    )
