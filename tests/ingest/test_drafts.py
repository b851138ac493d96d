from datetime import UTC, datetime

import pytest

from tidings.catalog.urls import URL_LIMIT, canonical_url
from tidings.errors import InvalidInput
from tidings.ingest.drafts import make_draft
from tidings.text import plain_text, sanitise_html


def test_canonical_url_drops_fragment_trackers_and_default_port() -> None:
    url = "HTTPS://Messenger.Example.GE:443/a/b?id=7&utm_source=x&fbclid=y#top"
    assert canonical_url(url) == "https://messenger.example.ge/a/b?id=7"
    assert canonical_url("http://example.ge:8080") == "http://example.ge:8080/"


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "ftp://x/y", "/relative", "", "http://[::1", "http://x:99999/"],
)
def test_non_http_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        canonical_url(url)


def test_plain_text_strips_tags_decodes_entities_and_folds_lines() -> None:
    raw = "  <b>Panjikidze</b> &amp; the\r\n\tEU: &ldquo;frank&rdquo;  "
    assert plain_text(raw) == "Panjikidze & the EU: \u201cfrank\u201d"


def test_sanitise_removes_scripts_handlers_and_bad_schemes() -> None:
    dirty = (
        '<p onclick="steal()">Hi<script>alert(1)</script></p>'
        '<a href="javascript:alert(2)">x</a><img src="https://x/y.png" onerror="z()">'
        "<style>body{}</style><iframe src='https://evil'></iframe>"
    )
    clean = sanitise_html(dirty)
    for bad in ("script", "onclick", "javascript:", "onerror", "<style", "iframe", "alert"):
        assert bad not in clean
    assert "<p>Hi</p>" in clean
    assert 'src="https://x/y.png"' in clean


def test_draft_uses_guid_else_url_and_summarises_body() -> None:
    with_guid = make_draft(url="https://x.ge/a", title="T", guid=" g-1 ")
    assert with_guid.guid == "g-1"
    body = "<p>" + "word " * 300 + "</p>"
    without = make_draft(url="https://x.ge/a?utm_medium=m", title="<i>T</i>", content_html=body)
    assert without.guid == "https://x.ge/a"
    assert without.title == "T"
    assert without.summary is not None and len(without.summary) <= 600
    assert without.summary.endswith("\u2026")


def test_draft_needs_a_title_and_keeps_times_in_utc() -> None:
    with pytest.raises(InvalidInput, match="title"):
        make_draft(url="https://x.ge/a", title=" <br> ")
    naive = make_draft(url="https://x.ge/a", title="T", published_at=datetime(2026, 6, 1, 9))
    assert naive.published_at == datetime(2026, 6, 1, 9, tzinfo=UTC)


def test_a_url_longer_than_the_limit_is_refused_with_its_length() -> None:
    base = "https://messenger.example.ge/story?q="
    longest = base + "x" * (URL_LIMIT - len(base))
    assert canonical_url(longest) == longest  # exactly at the limit: taken
    with pytest.raises(InvalidInput, match="2,049 characters long; at most 2,048"):
        canonical_url(longest + "x")
    with pytest.raises(InvalidInput, match="url is 102,4"):
        make_draft(url=base + "x" * 102_400, title="A story with a giant link")


@pytest.mark.parametrize("published", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_a_date_that_leaves_the_calendar_in_utc_is_refused(published: str) -> None:
    with pytest.raises(InvalidInput, match="out of range"):
        make_draft(url="https://x.ge/a", title="A", published_at=datetime.fromisoformat(published))
