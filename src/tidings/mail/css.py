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


#: premailer's "basic attributes" it must never write from CSS (its ``disable_basic_attributes``
#: option): ``bgcolor`` on a link or a paragraph is invalid HTML (the W3C checker's error on a
#: bulletproof button), and a fluid image's ``height: auto`` would become ``height="auto"``;
#: templates write the attributes they mean (an image's pixel size, Outlook's fixed width).
NO_BASIC_ATTRIBUTES = ("bgcolor", "width", "height")


def inline_css(html: str) -> str:
    """Inline the <style> rules into the markup; media queries stay in a <style> block.
    Nothing is fetched from the network (<link> or @import), and no CSS value becomes an
    HTML attribute (:data:`NO_BASIC_ATTRIBUTES`)."""
    return str(
        _OfflinePremailer(
            html,
            allow_network=False,
            disable_validation=True,
            cssutils_logging_level=logging.CRITICAL,
            remove_classes=False,
            keep_style_tags=False,
            strip_important=False,
            disable_basic_attributes=list(NO_BASIC_ATTRIBUTES),
        ).transform()
    )
