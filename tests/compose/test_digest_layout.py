"""The digest reads like a newspaper's and holds up in mail clients: a preheader, the lead
story with its picture, "In this edition" linked to each story's place, sections in a stable
order, times in the edition's zone, a first-name greeting, an honest footer, a fluid layout
that needs no <style>, dark colours that can be read, campaign tags, and list headers."""

import asyncio
import email
import email.policy
import html as htmlmod
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.contrast import contrast
from tests.deliver.ledgerrows import sending
from tests.smtpserver import smtp_server
from tidings.compose.render import (
    LEAD_IMAGE_WIDTH,
    NO_SECTION_HEADING,
    RenderedEdition,
    render_edition,
    zone_label,
)
from tidings.compose.utm import with_utm
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import Article, Edition, EditionStatus, Newsletter, Subscriber, Subscription
from tidings.deliver.ledger.claims import recipients
from tidings.deliver.runner import run_worker
from tidings.mail.css import inline_css
from tidings.mail.edition import EditionMail
from tidings.mail.message import HeaderInjection, subject_header
from tidings.mail.personal import first_name, greeting
from tidings.mail.templates import email_environment, load_triplet
from tidings.paths import templates_dir

NOW = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)  # 08:00 in Tbilisi
SECTIONS = ["Politics", "Diplomacy", None, "Economy", "Politics", "Culture", None]


def _newsletter(**overrides: Any) -> Newsletter:
    values: dict[str, Any] = {
        "slug": "daily",
        "name": "The Daily Messenger",
        "from_name": "The Messenger",
        "from_address": "digest@messenger.example.ge",
        "reply_to": None,
        "schedule_cron": "0 8 * * *",
        "timezone": "Asia/Tbilisi",
        "template_set": "digest",
        "show_images": True,
        "postal_address": "22 Rustaveli Avenue\nTbilisi 0108\nGeorgia",
        "footer_text": "The Messenger has been Georgia's English-language daily since 1993.",
        "utm_source": None,
    }
    values.update(overrides)
    return Newsletter(**values)


def _articles(sections: list[str | None] = SECTIONS, **lead: Any) -> list[Article]:
    made = [
        Article(
            id=i,
            title=f"Story {i}: Panjikidze meets envoys",
            url=f"https://messenger.example.ge/{i}?from=feed#top",
            byline="By Messenger Staff",
            section=section,
            summary=f"Summary {i}.",
            published_at=NOW - timedelta(hours=i),
        )
        for i, section in enumerate(sections)
    ]
    for key, value in lead.items():
        setattr(made[0], key, value)
    return made


def _render(
    newsletter: Newsletter | None = None, articles: list[Article] | None = None, **kwargs: Any
) -> RenderedEdition:
    templates = load_triplet(email_environment(None), "digest")
    return render_edition(
        templates,
        newsletter or _newsletter(),
        articles if articles is not None else _articles(),
        issued_at=NOW,
        **kwargs,
    )


def _mail(rendered: RenderedEdition, settings: Settings, zone: str = "Asia/Tbilisi") -> EditionMail:
    return EditionMail(
        settings=settings,
        edition_id=7,
        slug="daily",
        newsletter_name="The Daily Messenger",
        from_name="The Messenger",
        from_address="digest@messenger.example.ge",
        reply_to=None,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        date=NOW,
        zone=zone,
    )


def _message(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _parts(message: EmailMessage) -> tuple[str, str]:
    html_part, text_part = message.get_body(("html",)), message.get_body(("plain",))
    assert html_part is not None and text_part is not None
    return html_part.get_content(), text_part.get_content()


def _filled(rendered: RenderedEdition, settings: Settings, name: str | None = "Nino") -> str:
    return _parts(
        _message(_mail(rendered, settings).message_for(41, "nino@example.ge", name, "<m@x>"))
    )[0]


def _visible_text(html: str) -> str:
    """The body's text in order, tags and comments gone, entities decoded, spaces collapsed."""
    body = html.split("<body", 1)[1].split(">", 1)[1]
    body = re.sub(r"<!--.*?-->", " ", body, flags=re.S)
    return " ".join(htmlmod.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def _footer(html: str) -> str:
    found = re.search(r'<td class="footer"[^>]*>(.*?)</td>', html, re.S)
    assert found is not None
    return htmlmod.unescape(re.sub(r"<[^>]+>", " ", found.group(1)))


# The lead, the table of contents, the sections


def test_the_lead_story_comes_first_larger_with_its_picture_at_a_kept_proportion() -> None:
    rendered = _render(
        articles=_articles(
            image_url="https://messenger.example.ge/img/0.jpg",
            image_width=1200,
            image_height=800,
            image_alt="Ministers at the table",
        )
    )
    lead = re.search(r'<td class="lead"[^>]*id="story-1"[^>]*>(.*?)</td>', rendered.html, re.S)
    assert lead is not None and "Story 0: Panjikidze meets envoys" in lead.group(1)
    image = re.search(r"<img [^>]*>", lead.group(1))
    assert image is not None
    tag = image.group(0)
    assert f'width="{LEAD_IMAGE_WIDTH}"' in tag and 'height="368"' in tag  # 1200x800 at 552
    assert 'alt="Ministers at the table"' in tag
    assert 'src="https://messenger.example.ge/img/0.jpg"' in tag
    assert "width:100%" in tag.replace(" ", "") and "height:auto" in tag.replace(" ", "")
    # Larger than the other headlines.
    sizes = [
        (kind, int(re.findall(r"font-size:\s*(\d+)px", tag)[0]))
        for tag, kind in re.findall(
            r'(<h[23] class="(lead-headline|headline)"[^>]*>)', rendered.html
        )
    ]
    lead_size = next(size for kind, size in sizes if kind == "lead-headline")
    assert len(sizes) == len(SECTIONS)
    assert all(size < lead_size for kind, size in sizes if kind == "headline")
    assert rendered.html.count("<img ") == 1  # only the lead shows a picture


@pytest.mark.parametrize(
    ("images_on", "fields"),
    [
        (
            False,
            {
                "image_url": "https://messenger.example.ge/a.jpg",
                "image_width": 600,
                "image_height": 400,
            },
        ),
        (
            True,
            {
                "image_url": "https://messenger.example.ge/a.jpg",
                "image_width": None,
                "image_height": 400,
            },
        ),
        (True, {"image_url": "javascript:alert(1)", "image_width": 600, "image_height": 400}),
    ],
)
def test_no_picture_when_images_are_off_its_size_unknown_or_its_address_not_http(
    images_on: bool, fields: dict[str, Any]
) -> None:
    rendered = _render(_newsletter(show_images=images_on), _articles(**fields))
    assert "<img" not in rendered.html


def test_a_small_picture_keeps_its_own_size_and_the_title_is_its_alt_text() -> None:
    rendered = _render(
        articles=_articles(
            image_url="https://messenger.example.ge/s.png", image_width=300, image_height=200
        )
    )
    tag = re.search(r"<img [^>]*>", rendered.html)
    assert tag is not None
    assert 'width="300"' in tag.group(0) and 'height="200"' in tag.group(0)
    assert 'alt="Story 0: Panjikidze meets envoys"' in tag.group(0)


def test_in_this_edition_links_every_headline_to_its_place_in_the_mail() -> None:
    rendered = _render()
    contents = re.search(r'<ol class="contents-list"[^>]*>(.*?)</ol>', rendered.html, re.S)
    assert contents is not None
    links = re.findall(r'<a href="#(story-\d+)"[^>]*>([^<]+)</a>', contents.group(1))
    assert len(links) == len(SECTIONS)
    for anchor, title in links:
        place = re.search(rf'id="{anchor}"[^>]*>(.*?)</td>', rendered.html, re.S)
        assert place is not None and title in place.group(1), anchor


def test_sections_in_order_of_first_appearance_and_articles_without_one_last() -> None:
    rendered = _render()
    headings = re.findall(r'<h2 class="section-heading"[^>]*>([^<]+)</h2>', rendered.html)
    # Story 0 (Politics) leads, so Politics comes first; the others: Diplomacy 1, none 2,
    # Economy 3, Politics 4, Culture 5, none 6.
    assert headings == ["Politics", "Diplomacy", "Economy", "Culture", NO_SECTION_HEADING]
    order = [
        int(n)
        for n in re.findall(
            r'<h[23] class="(?:lead-)?headline"[^>]*><a [^>]*>Story (\d+):', rendered.html
        )
    ]
    assert order == [0, 4, 1, 3, 5, 2, 6]
    # The text part mirrors it: the same headings, the same numbered order.
    text = rendered.text
    positions = [text.index(f"\n{heading.upper()}\n") for heading in headings]
    assert positions == sorted(positions)
    numbered = re.findall(r"^(\d+)\. Story (\d+):", text, re.M)
    assert [(int(a), int(b)) for a, b in numbered] == list(enumerate(order, start=1))
    assert "IN THIS EDITION" in text and "TOP STORY · POLITICS" in text


def test_without_any_section_there_is_no_heading_at_all() -> None:
    rendered = _render(articles=_articles([None, None, None]))
    assert 'class="section-heading"' not in rendered.html
    assert NO_SECTION_HEADING.upper() not in rendered.text


def test_the_preheader_is_the_first_text_and_summarises_the_edition(settings: Settings) -> None:
    filled = _filled(_render(), settings)
    first = _visible_text(filled)
    expected = "Story 0: Panjikidze meets envoys + 6 more in Politics, Diplomacy, Economy, Culture"
    assert first.startswith(expected)
    # Then only filler (zero-width non-joiners and no-break spaces), long enough that an
    # inbox preview shows nothing of the mail after it ("View in browser", the greeting).
    filler = first[len(expected) : first.index("View in browser")]
    assert set(filler) <= {"\u200c", " "} and len(filler) >= 150
    preheader = re.search(r'<div class="preheader" style="([^"]*)"', filled)
    assert preheader is not None and "font-size:0" in preheader.group(1).replace(" ", "")


# Times, greeting, footer


@pytest.mark.parametrize(
    ("zone", "date", "time", "label"),
    [
        ("Asia/Tbilisi", "Monday, December 7, 2026", "December 7, 08:00", "Tbilisi time"),
        ("America/New_York", "Sunday, December 6, 2026", "December 6, 23:00", "New York time"),
        ("Asia/Kathmandu", "Monday, December 7, 2026", "December 7, 09:45", "Kathmandu time"),
        ("UTC", "Monday, December 7, 2026", "December 7, 04:00", "UTC"),
    ],
)
def test_times_are_shown_in_the_editions_zone_and_the_zone_is_named(
    zone: str, date: str, time: str, label: str
) -> None:
    rendered = _render(zone=zone)
    for part in (htmlmod.unescape(rendered.html), rendered.text):
        assert f"{date} · {label}" in part and time in part


def test_zone_labels() -> None:
    assert zone_label("America/Argentina/Buenos_Aires", NOW) == "Buenos Aires time"
    assert zone_label("Etc/GMT-4", NOW) == "+04"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Nino Beridze", "Hello Nino,"),
        ("  ლევან  ხარაბაძე ", "Hello ლევან,"),
        (None, "Hello,"),
        ("", "Hello,"),
        ("reader0@example.ge", "Hello,"),
        ("— 42", "Hello,"),
    ],
)
def test_the_greeting_uses_the_first_name_or_none(name: str | None, expected: str) -> None:
    assert greeting(name) == expected
    assert first_name(name) == (expected[6:-1] or None)


def test_a_reader_is_greeted_by_first_name_never_by_address(settings: Settings) -> None:
    rendered = _render()
    assert "Hello Nino," in _filled(rendered, settings, "Nino Beridze")
    anonymous = _filled(rendered, settings, "reader0@example.ge")
    assert "Hello," in anonymous and "Hello reader0" not in anonymous


def test_the_footer_has_the_address_the_text_and_why_once_named(settings: Settings) -> None:
    rendered = _render()
    raw = _mail(rendered, settings).message_for(
        41,
        "nino@example.ge",
        "Nino",
        "<m@x>",
        signed_up_at=datetime(2026, 3, 2, 22, 30, tzinfo=UTC),
    )
    html, text = _parts(_message(raw))
    footer = " ".join(_footer(html).split())
    assert "22 Rustaveli Avenue, Tbilisi 0108, Georgia" in footer
    assert "English-language daily since 1993" in footer
    # 22:30 UTC on March 2 is March 3 in Tbilisi.
    assert (
        "You get this mail because you signed up on March 3, 2026 with nino@example.ge." in footer
    )
    assert footer.count("The Daily Messenger") == 1 and "The Messenger ·" not in footer
    text_footer = text.rsplit("View this digest in your browser:", 1)[1]
    assert text_footer.count("The Daily Messenger") == 1
    assert "22 Rustaveli Avenue, Tbilisi 0108, Georgia" in text_footer
    assert "signed up on March 3, 2026 with nino@example.ge." in " ".join(text_footer.split())
    # Without a known day the sentence still reads.
    unknown = _parts(
        _message(_mail(rendered, settings).message_for(41, "n@example.ge", None, "<m@x>"))
    )[0]
    assert "because you signed up with n@example.ge." in " ".join(_footer(unknown).split())


def test_footer_and_address_text_never_make_a_slot(settings: Settings) -> None:
    tricky = "Write to {{ personal.email }} or ZZtidings_email_ZZ"
    rendered = _render(_newsletter(footer_text=tricky, postal_address=tricky))
    html = _filled(rendered, settings)
    assert htmlmod.unescape(html).count(tricky) == 2
    assert html.count("nino@example.ge") == 1  # only in the template's own slot


# Layout without <style>, buttons, colours


def _outside_mso(html: str) -> str:
    return re.sub(r"<!--\[if mso\]>.*?<!\[endif\]-->", "", html, flags=re.S)


def test_fluid_hybrid_layout_needs_no_style_block() -> None:
    rendered = _render(
        articles=_articles(
            image_url="https://messenger.example.ge/i.jpg", image_width=2000, image_height=1000
        )
    )
    html = rendered.html
    container = re.search(r'<table [^>]*class="container"[^>]*>', html)
    assert container is not None
    style = container.group(0).replace(" ", "")
    assert "width:100%" in style and "max-width:600px" in style
    # Outlook alone gets a fixed 600 px table, inside a conditional comment.
    assert re.search(r'<!--\[if mso\]><table [^>]*width="600"', html)
    plain = _outside_mso(html)
    for width in re.findall(r'\bwidth="(\d+)"', plain):
        if int(width) > 375:  # only a fluid picture may say more, and shrinks with its column
            tag = re.search(rf'<img [^>]*width="{width}"[^>]*>', plain)
            assert tag is not None and "width:100%" in tag.group(0).replace(" ", "")
    for width in re.findall(r"(?<![-\w])width:\s*(\d+)px", plain):
        assert int(width) <= 375, width
    assert "bgcolor" not in html  # premailer writes no bgcolor (a link may not have one)


def test_buttons_are_table_cells_with_a_coloured_link() -> None:
    html = _render().html
    cell = r'<td class="button-cell" style="([^"]*)">'
    link = r'<a class="button-link" href="[^"]+" style="([^"]*)">'
    buttons = re.findall(cell + link, html)
    assert len(buttons) == len(SECTIONS)
    for cell, link in buttons:
        assert "background-color:#8c1c13" in cell.replace(" ", "")
        assert "display:inline-block" in link.replace(" ", "") and "padding" in link
    assert not re.search(r"<a [^>]*bgcolor", html)


def test_premailer_keeps_css_off_html_attributes() -> None:
    inlined = inline_css(
        "<html><head><style>a { background-color: #123; } img { width: 100%; height: auto; }"
        "</style></head><body><a href='x'>x</a><img src='y' width='300' height='200'></body></html>"
    )
    assert "bgcolor" not in inlined and 'height="auto"' not in inlined
    assert 'width="300"' in inlined and 'height="200"' in inlined


def test_contrast_function() -> None:
    assert round(contrast("#000", "#fff"), 1) == 21.0
    assert round(contrast("#6b6b66", "#22221f"), 2) == 2.98  # the old dark footer


def _rules(css: str) -> list[tuple[str, dict[str, str]]]:
    found = []
    for selectors, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        declarations = dict(
            (k.strip(), v.replace("!important", "").strip())
            for k, v in (d.split(":", 1) for d in body.split(";") if ":" in d)
        )
        found.append((selectors.strip(), declarations))
    return found


def _style_block() -> tuple[str, str]:
    source = (templates_dir() / "email" / "digest" / "body.html").read_text()
    css = re.findall(r"<style>(.*?)</style>", source, re.S)[-1]
    dark_start = css.index("@media (prefers-color-scheme: dark)")
    dark = css[dark_start:]
    return css[:dark_start], dark[dark.index("{") + 1 : dark.rindex("}")]


def test_every_text_colour_reads_at_4_5_to_1_in_light_and_dark() -> None:
    light_css, dark_css = _style_block()
    light, dark = _rules(light_css), _rules(dark_css)
    light_page = next(d["background-color"] for s, d in light if s == ".container")
    dark_page = next(d["background-color"] for s, d in dark if s == ".container")
    checked = 0
    for rules, page in ((light, light_page), (dark, dark_page)):
        for selectors, declarations in rules:
            if "color" not in declarations or ".preheader" in selectors:
                continue  # (the preheader is never shown)
            background = declarations.get("background-color", page)
            ratio = contrast(declarations["color"], background)
            assert ratio >= 4.5, (
                f"{selectors}: {declarations['color']} on {background} is {ratio:.2f}"
            )
            checked += 1
    # The dark rules that were 2.98:1 (byline, date, footer and its links) are among them.
    dark_colours = {s: d["color"] for s, d in dark if "color" in d}
    for selector in (".meta", ".masthead-date", ".footer a"):
        assert any(selector in s for s in dark_colours), selector
    # A dark rule that changes a background keeps its own text readable on it: the button
    # keeps its light colours in both.
    assert checked >= 15


# Campaign tags


def test_utm_tags_keep_the_query_and_fragment() -> None:
    tagged = with_utm(
        "https://messenger.example.ge/a?id=7&x=%2F#comments", "messenger", "daily-2026-12-07"
    )
    assert tagged == (
        "https://messenger.example.ge/a?id=7&x=%2F&utm_source=messenger&utm_medium=email"
        "&utm_campaign=daily-2026-12-07#comments"
    )


def test_utm_tags_replace_the_feeds_own_and_are_encoded() -> None:
    tagged = with_utm(
        "https://m.example.ge/a?utm_source=rss&UTM_Medium=feed&p=1", "The Messenger & co", "c"
    )
    assert (
        tagged
        == "https://m.example.ge/a?p=1&utm_source=The+Messenger+%26+co&utm_medium=email&utm_campaign=c"
    )


@pytest.mark.parametrize("url", ["mailto:ed@messenger.example.ge", "/relative", "ftp://x.ge/a"])
def test_utm_tags_only_on_web_links(url: str) -> None:
    assert with_utm(url, "messenger", "c") == url


def test_utm_tags_only_when_the_newsletter_asks() -> None:
    assert with_utm("https://m.example.ge/a", None, "c") == "https://m.example.ge/a"
    assert with_utm("https://m.example.ge/a", "  ", "c") == "https://m.example.ge/a"
    plain = _render()
    assert "utm_" not in plain.html and "utm_" not in plain.text
    tagged = _render(_newsletter(utm_source="messenger"))
    link = "https://messenger.example.ge/3?from=feed&utm_source=messenger&utm_medium=email&utm_campaign=daily-2026-12-07#top"
    assert link in tagged.text and htmlmod.escape(link) in tagged.html
    weekly = _render(_newsletter(utm_source="messenger"), weekly=True)
    assert "utm_campaign=daily-weekly-2026-12-07" in weekly.text


# Headers


def test_list_headers_and_feedback_id(settings: Settings) -> None:
    message = _message(
        _mail(_render(), settings).message_for(41, "nino@example.ge", "Nino", "<m@x>")
    )
    assert message["List-Archive"] == f"<{settings.base_url}/archive/daily>"
    help_link = message["List-Help"]
    assert help_link.startswith(f"<{settings.base_url}/preferences/") and help_link.endswith(">")
    assert message["List-Post"] == "NO"
    fields = message["Feedback-ID"].split(":")
    assert fields == ["7", "daily", "tidings", "messenger.example.ge"]  # the sender id last


def _header_lines(raw: bytes, name: bytes) -> list[bytes]:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    start = next(i for i, line in enumerate(head) if line.startswith(name + b":"))
    lines = [head[start]]
    for line in head[start + 1 :]:
        if not line[:1].isspace():
            break
        lines.append(line)
    return lines


@pytest.mark.parametrize(
    "subject",
    [
        "ახალი ამბები: პანჯიკიძე და აბაშიძე შეხვდნენ ელჩებს თბილისში, ბრიუსელსა და ვაშინგტონში",
        "The Daily Messenger: Panjikidze meets envoys in Brussels and Washington as the "
        "corridor plan advances and 9 more",
        "Überraschung: “Panjikidze” trifft Abashidze — und 12 weitere Meldungen aus Tiflis "
        "und Batumi heute",
        "Supercalifragilisticexpialidocious-Panjikidze-Abashidze-corridor-talks-in-Brussels-"
        "and-Tbilisi today",
    ],
)
def test_the_subject_is_never_folded_onto_an_empty_first_line(
    settings: Settings, subject: str
) -> None:
    rendered = _render(subject=subject)
    raw = _mail(rendered, settings).message_for(41, "nino@example.ge", "Nino", "<m@x>")
    lines = _header_lines(raw, b"Subject")
    assert lines[0].strip() != b"Subject:" and len(lines[0]) > len(b"Subject: ")
    assert all(len(line) <= 78 for line in lines)
    assert all(line.strip() for line in lines)  # no white-space-only continuation line
    assert _message(raw)["Subject"] == subject


def test_the_subject_header_refuses_line_breaks() -> None:
    with pytest.raises(HeaderInjection):
        subject_header("Today\r\nBcc: everyone@example.ge")
    assert subject_header("Short and plain") == "Subject: Short and plain\r\n"


# Storage: the reader's sign-up day, through the worker and a real SMTP server


def test_each_reader_is_told_the_day_they_signed_up(db: Database, settings: Settings) -> None:
    with smtp_server() as (smtp, port):
        live = settings.model_copy(update={"smtp_url": f"smtp://127.0.0.1:{port}"})
        made = sending(db, live, readers=3)
        consent = datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
        confirmed = datetime(2026, 4, 14, 9, 0, tzinfo=UTC)
        created = datetime(2026, 5, 20, 9, 0, tzinfo=UTC)
        with db.session() as session:
            ids = dict(session.execute(select(Subscriber.email, Subscriber.id)).all())
            chosen = {
                "reader0@example.ge": (consent, confirmed, created),
                "reader1@example.ge": (None, confirmed, created),
                "reader2@example.ge": (None, None, created),
            }
            for address, (consent_at, confirmed_at, created_at) in chosen.items():
                session.execute(
                    update(Subscription)
                    .where(Subscription.subscriber_id == ids[address])
                    .values(consent_at=consent_at, confirmed_at=confirmed_at, created_at=created_at)
                )
            session.commit()
            found = recipients(session, made.newsletter_id, list(ids.values()))
            assert {r.email: r.signed_up_at for r in found.values()} == {
                "reader0@example.ge": consent,
                "reader1@example.ge": confirmed,
                "reader2@example.ge": created,
            }
        with ThreadPoolExecutor(1) as pool:  # a loop of its own, whatever else runs here
            pool.submit(
                lambda: asyncio.run(run_worker(db, live, drain=True, stop=asyncio.Event()))
            ).result(timeout=60)
        with db.session() as session:
            status = session.scalar(select(Edition.status).where(Edition.id == made.edition_id))
        assert status == EditionStatus.sent
        days = {
            "reader0@example.ge": "March 3",
            "reader1@example.ge": "April 14",
            "reader2@example.ge": "May 20",
        }
        for caught in smtp.caught:
            (address,) = caught.rcpt_tos
            html, text = _parts(caught.message)
            said = f"you signed up on {days[address]}, 2026 with {address}."
            assert said in " ".join(_footer(html).split()) and said in " ".join(text.split())
            assert "Hello Reader," in text
            assert caught.message["List-Post"] == "NO" and caught.message["List-Archive"]
        assert len(smtp.caught) == 3
