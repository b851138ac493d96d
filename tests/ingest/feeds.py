"""Feed documents for the ingestion tests, written for them."""

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

TBILISI = timezone(timedelta(hours=4))


def rss(items: list[dict[str, str]]) -> bytes:
    parts = []
    for item in items:
        fields = "".join(
            f"<{tag}>{value}</{tag}>" for tag, value in item.items() if tag != "content"
        )
        content = item.get("content")
        encoded = f"<content:encoded><![CDATA[{content}]]></content:encoded>" if content else ""
        parts.append(f"<item>{fields}{encoded}</item>")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel>'
        "<title>The Messenger</title><link>https://messenger.example.ge/</link>"
        f"<description>News</description>{''.join(parts)}</channel></rss>"
    ).encode()


def item(n: int, title: str | None = None, **extra: str) -> dict[str, str]:
    when = datetime(2026, 6, 20, 9, 0, tzinfo=TBILISI) + timedelta(hours=n)
    fields = {
        "title": title or f"Story number {n}",
        "link": f"https://messenger.example.ge/story/{n}",
        "guid": f"story-{n}",
        "dc:creator": "By Messenger Staff",
        "category": "Politics",
        "pubDate": format_datetime(when),
        "description": f"Summary of story {n}.",
    }
    fields.update(extra)
    return fields


ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Messenger Culture</title><id>urn:messenger:culture</id>
  <updated>2026-06-25T12:00:00Z</updated>
  <entry>
    <title>Rustaveli Theatre opens its season</title>
    <id>urn:messenger:culture:1</id>
    <link href="https://messenger.example.ge/culture/1"/>
    <updated>2026-06-25T12:00:00Z</updated>
    <author><name>Tamar Beridze</name></author>
    <category term="Culture"/>
    <summary>A new Hamlet.</summary>
    <content type="html">&lt;p&gt;A new &lt;em&gt;Hamlet&lt;/em&gt;.&lt;/p&gt;</content>
  </entry>
</feed>"""

JSON_FEED = b"""{
  "version": "https://jsonfeed.org/version/1.1",
  "title": "Messenger Economy",
  "items": [
    {"id": "eco-1", "url": "https://messenger.example.ge/economy/1",
     "title": "Wine exports rise", "content_text": "First paragraph.\\n\\nSecond <b>one</b>.",
     "date_published": "2026-06-24T14:40:00+04:00", "authors": [{"name": "Levan Tsiklauri"}],
     "tags": ["Economy"]},
    {"id": "eco-2", "title": "No URL here"}
  ]
}"""
