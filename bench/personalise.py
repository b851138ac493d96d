"""Per-subscriber cost of a digest: Tidings' way against the naive way, in the same run.

    .venv/bin/python bench/personalise.py [--subscribers 2000] [--naive 40]

Tidings renders the templates and inlines the CSS once per edition and splits each part once
into literal segments and the slots the templates made (their segments quoted-printable encoded
once); for each subscriber it encodes the personal values, joins them between the segments and
builds the MIME message. The naive way renders the
templates and runs premailer for every subscriber. Both build the complete message bytes.
"""

import argparse
import statistics
import time
from datetime import UTC, datetime

from tidings.compose.render import render_edition
from tidings.config import Settings
from tidings.db.models import Article, Edition, Newsletter
from tidings.ingest.parse import parse_feed
from tidings.mail.edition import EditionMail, edition_mail
from tidings.mail.templates import email_environment, load_triplet
from tidings.paths import sample_dir

ISSUED = datetime(2026, 6, 26, 4, 0, tzinfo=UTC)


def sample() -> tuple[Newsletter, list[Article]]:
    newsletter = Newsletter(
        slug="messenger",
        name="The Tbilisi Messenger Daily",
        from_name="The Messenger",
        from_address="digest@messenger.example.ge",
        reply_to=None,
        schedule_cron="0 8 * * *",
        timezone="Asia/Tbilisi",
        template_set="digest",
    )
    drafts = parse_feed((sample_dir() / "feed.xml").read_bytes()).drafts[:12]
    articles = [
        Article(
            id=i,
            title=d.title,
            url=d.url,
            byline=d.byline,
            section=d.section,
            summary=d.summary,
            published_at=d.published_at or ISSUED,
        )
        for i, d in enumerate(drafts)
    ]
    return newsletter, articles


def mail_for(settings: Settings, newsletter: Newsletter, articles: list[Article]) -> EditionMail:
    templates = load_triplet(email_environment(None), "digest")
    rendered = render_edition(templates, newsletter, articles, issued_at=ISSUED)
    edition = Edition(
        id=1,
        subject=rendered.subject,
        html_body=rendered.html,
        text_body=rendered.text,
        started_at=ISSUED,
    )
    return edition_mail(settings, edition, newsletter)


def per_message_seconds(work: object, count: int) -> list[float]:
    timings = []
    for i in range(count):
        started = time.perf_counter()
        work(i)  # type: ignore[operator]
        timings.append(time.perf_counter() - started)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--naive", type=int, default=40)
    args = parser.parse_args()
    settings = Settings(secret_key="bench-secret-key-" + "x" * 32)
    newsletter, articles = sample()

    started = time.perf_counter()
    mail = mail_for(settings, newsletter, articles)
    once = time.perf_counter() - started

    def tidings_way(i: int) -> bytes:
        return mail.message_for(i, f"reader{i}@example.ge", f"Reader {i}", f"<m{i}@x>")

    def naive_way(i: int) -> bytes:
        return mail_for(settings, newsletter, articles).message_for(
            i, f"reader{i}@example.ge", f"Reader {i}", f"<m{i}@x>"
        )

    ours = per_message_seconds(tidings_way, args.subscribers)
    naive = per_message_seconds(naive_way, args.naive)
    size = len(tidings_way(0))
    ours_ms = statistics.median(ours) * 1000
    naive_ms = statistics.median(naive) * 1000
    print(f"digest of {len(articles)} articles, message {size / 1024:.1f} KB")
    print(f"once per edition (render + premailer): {once * 1000:.1f} ms")
    print(
        f"tidings, per subscriber : median {ours_ms:.3f} ms, p95 "
        f"{sorted(ours)[int(len(ours) * 0.95)] * 1000:.3f} ms ({args.subscribers} messages)"
    )
    print(f"naive, per subscriber   : median {naive_ms:.3f} ms ({args.naive} messages)")
    print(f"ratio                   : naive is {naive_ms / ours_ms:.0f}x the per-subscriber cost")


if __name__ == "__main__":
    main()
