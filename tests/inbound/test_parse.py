"""inbound/parse: what each real-world message is, read from its bytes alone."""

import pytest

from tests.inbound.samples import DEFAULTS, sample
from tidings.inbound.parse import Kind, parse_message
from tidings.mail.status import BounceKind, classify

READER = DEFAULTS["READER"]
RETURN_PATH = DEFAULTS["RETURN_PATH"]


@pytest.mark.parametrize(
    ("name", "kind", "action", "status", "code", "bounce", "standard"),
    [
        ("postfix_511", Kind.dsn, "failed", "5.1.1", 550, BounceKind.hard, True),
        ("gmail_headers_only", Kind.dsn, "failed", "5.1.1", 550, BounceKind.hard, True),
        ("mailbox_full_422", Kind.dsn, "failed", "4.2.2", 452, BounceKind.soft, True),
        ("blocklist_571", Kind.dsn, "failed", "5.7.1", 554, BounceKind.policy, True),
        ("exim_plain", Kind.dsn, "failed", "5.1.1", 550, BounceKind.hard, False),
    ],
)
def test_bounces(
    name: str,
    kind: Kind,
    action: str,
    status: str,
    code: int,
    bounce: BounceKind,
    standard: bool,
) -> None:
    parsed = parse_message(sample(name))
    assert parsed.kind == kind
    assert parsed.standard is standard
    report = parsed.report_for(READER)
    assert report is not None
    assert (report.action, report.status, report.reply_code) == (action, status, code)
    assert report.final_recipient == READER
    assert classify(report.reply_code, report.status, report.diagnostic or "") == bounce
    assert parsed.head.addressed_to[0] == RETURN_PATH


def test_a_dsn_returning_the_whole_message_quotes_its_headers() -> None:
    parsed = parse_message(sample("postfix_511"))
    assert parsed.returned is not None
    assert parsed.returned.return_path == RETURN_PATH
    assert parsed.returned.message_id == DEFAULTS["MESSAGE_ID"]
    assert DEFAULTS["UNSUBSCRIBE"] in (parsed.returned.list_unsubscribe or "")
    report = parsed.report_for(READER)
    assert report is not None and report.diagnostic is not None
    # A folded Diagnostic-Code is one line.
    assert report.diagnostic.endswith("User unknown in virtual mailbox table")


def test_a_dsn_returning_headers_only_or_nothing() -> None:
    headers_only = parse_message(sample("gmail_headers_only"))
    assert headers_only.returned is not None
    assert headers_only.returned.message_id == DEFAULTS["MESSAGE_ID"]
    nothing = parse_message(sample("blocklist_571"))
    assert nothing.kind == Kind.dsn and nothing.returned is None
    # The human-readable part is not mistaken for the per-recipient fields.
    assert len(nothing.recipients) == 1


def test_the_free_text_bounce_does_not_read_the_quoted_message() -> None:
    """exim's copy of the message says 4.2.2: the diagnostic line above it is what counts."""
    parsed = parse_message(sample("exim_plain"))
    (report,) = parsed.recipients
    assert report.diagnostic == f"550 5.1.1 <{READER}>... User unknown"


def test_an_abuse_report() -> None:
    parsed = parse_message(sample("yahoo_arf"))
    assert parsed.kind == Kind.arf
    assert parsed.feedback is not None
    assert parsed.feedback.feedback_type == "abuse"
    assert parsed.feedback.original_mail_from == RETURN_PATH
    assert parsed.feedback.original_rcpt_to == READER
    assert parsed.feedback.user_agent == "Yahoo!-Mail-Feedback/2.0"
    assert parsed.returned is not None
    assert parsed.returned.return_path == RETURN_PATH
    assert parsed.returned.message_id == DEFAULTS["MESSAGE_ID"]
    assert DEFAULTS["UNSUBSCRIBE"] in (parsed.returned.list_unsubscribe or "")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("out_of_office", "Auto-Submitted: auto-replied"),
        ("vacation_subject", "'Out of Office' in its subject"),
    ],
)
def test_auto_replies_are_never_bounces(name: str, reason: str) -> None:
    parsed = parse_message(sample(name))
    assert (parsed.kind, parsed.reason) == (Kind.auto_reply, reason)
    assert parsed.recipients == ()


def test_a_persons_unsubscribe_request() -> None:
    parsed = parse_message(sample("please_unsubscribe"))
    assert parsed.kind == Kind.unsubscribe
    assert parsed.head.sender == READER
    assert parsed.head.addressed_to[0] == DEFAULTS["RECIPIENT"]


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ("X-Autoreply: yes\nSubject: Re: hello", Kind.auto_reply),
        ("X-Autorespond: on\nSubject: Re: hello", Kind.auto_reply),
        ("Precedence: auto_reply\nSubject: Re: hello", Kind.auto_reply),
        ("Subject: Abwesenheitsnotiz: The Daily Messenger", Kind.auto_reply),
        ("Subject: Automatic reply: hello", Kind.auto_reply),
        ("Auto-Submitted: no\nSubject: thanks for the digest", Kind.unknown),
        # A vacation reply with an empty return path is still not a bounce.
        ("Return-Path: <>\nSubject: Out of office", Kind.auto_reply),
        # A bounce subject with an empty return path is one, even without a report.
        ("Return-Path: <>\nSubject: failure notice", Kind.dsn),
        # The same subject from a person is not.
        ("Return-Path: <a@example.org>\nSubject: failure notice", Kind.unknown),
    ],
)
def test_headers_decide(headers: str, kind: Kind) -> None:
    raw = f"From: Someone <someone@example.org>\n{headers}\n\nA body.\n".encode()
    assert parse_message(raw).kind == kind


def test_a_qmail_bounce() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example.net\nSubject: failure notice\nTo: x@example.org\n\n"
        b"Hi. This is the qmail-send program at mx.example.net.\n"
        b"I'm afraid I wasn't able to deliver your message to the following addresses.\n\n"
        b"<gone@example.net>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n"
        b"--- Below this line is a copy of the message.\n\nSubject: 4.4.7\n"
    )
    parsed = parse_message(raw)
    assert parsed.kind == Kind.dsn and not parsed.standard
    assert parsed.recipients[0].status == "5.1.1"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage without headers",
        b"Content-Type: multipart/report; report-type=delivery-status\n\nno boundary",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n"
        b"Content-Type: message/delivery-status\n\n\xff\xff: \xfe\n\n--x--",
        b"Content-Type: multipart/report; report-type=feedback-report; boundary=y\n\n--y\n"
        b"Content-Type: message/feedback-report\n\n--y\nContent-Type: message/rfc822\n\n--y--",
        b"From: =?bogus?Q?x?= <\nSubject: =?utf-8?B?####?=\nTo: ,,,<<@>>\n\nbody",
        b"Content-Type: text/plain; charset=no-such-charset\nFrom: postmaster@x\n\n550 5.1.1",
        # Deep nesting and many parts stay bounded.
        b"Content-Type: multipart/mixed; boundary=a\n\n"
        + b"".join(b"--a\nContent-Type: text/plain\n\npart %d\n" % i for i in range(2000))
        + b"--a--\n",
    ],
)
def test_malformed_mail_never_raises(raw: bytes) -> None:
    parsed = parse_message(raw)
    assert parsed.kind in set(Kind)


def test_a_report_inside_a_mixed_message_is_found() -> None:
    inner = sample("blocklist_571").split(b"\n\n", 1)
    headers, body = inner[0], inner[1]
    content_type = [line for line in headers.split(b"\n") if line.startswith(b"Content-Type")]
    raw = (
        b"From: postmaster@relay.example\nSubject: report\n"
        b"Content-Type: multipart/mixed; boundary=outer\n\n--outer\n"
        + content_type[0]
        + b'\n\tboundary="B11C2200F3.1737021602/relay.messenger.example.ge"\n\n'
        + body
        + b"\n--outer--\n"
    )
    parsed = parse_message(raw)
    assert parsed.kind == Kind.dsn and parsed.standard
    assert parsed.recipients[0].status == "5.7.1"
