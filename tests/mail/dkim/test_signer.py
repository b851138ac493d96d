"""The signer: dkimpy's own verify accepts its RSA and Ed25519 signatures (given the records
keygen prints), refuses a message altered after signing, and sees every required header
signed, From and Subject once more than present."""

from datetime import UTC, datetime

import dkim
import pytest
from dkim.canonicalization import Relaxed
from hypothesis import given
from hypothesis import strategies as st

from tests.mail.dkim.published import DnsFunc, from_zone_lines, verified
from tidings.db.models import DkimAlgorithm
from tidings.mail.dkim.keys import dns_record, generate, load_private
from tidings.mail.dkim.signer import RelaxedBody, Signer, SigningKey
from tidings.mail.message import MessageTemplate, Personalised

DOMAIN = "messenger.example.ge"


def _key(algorithm: DkimAlgorithm, selector: str) -> tuple[SigningKey, str]:
    pair = generate(algorithm)
    key = SigningKey(DOMAIN, selector, algorithm, load_private(pair.private_pem))
    return key, dns_record(DOMAIN, selector, algorithm, pair.public_key).zone_line


@pytest.fixture(scope="module")
def keys() -> dict[DkimAlgorithm, tuple[SigningKey, str]]:
    return {a: _key(a, f"s-{a.value}") for a in DkimAlgorithm}


def _dns(keys: dict[DkimAlgorithm, tuple[SigningKey, str]]) -> DnsFunc:
    return from_zone_lines(line for _, line in keys.values())


def _message(reply_to: str | None = "ed@messenger.example.ge") -> bytes:
    template = MessageTemplate(
        from_name="The Messenger",
        from_address=f"digest@{DOMAIN}",
        reply_to=reply_to,
        subject="Friday, June 27: Panjikidze   meets   envoys",
        list_name="The Daily Messenger",
        list_id=f"daily.{DOMAIN}",
        date=datetime(2026, 6, 27, 7, tzinfo=UTC),
    )
    return template.build(
        Personalised(
            to_email="reader@example.ge",
            to_name="Nino Abashidze",
            message_id=f"<1.2@{DOMAIN}>",
            unsubscribe_url="https://messenger.example.ge/u/token",
            unsubscribe_mailto=f"mailto:u-1-abc@{DOMAIN}?subject=unsubscribe",
            html_qp=b"<p>Hello  \t reader</p>=\r\n",
            text_qp=b"Hello reader\r\n\r\n\r\n",
        )
    )


@pytest.mark.parametrize("algorithm", list(DkimAlgorithm))
def test_one_key_signs_and_dkimpy_verifies(
    keys: dict[DkimAlgorithm, tuple[SigningKey, str]], algorithm: DkimAlgorithm
) -> None:
    key, line = keys[algorithm]
    message = _message()
    signed = Signer([key]).sign(message)
    assert signed.endswith(message) and signed.startswith(b"DKIM-Signature: v=1; a=")
    assert dkim.verify(signed, dnsfunc=from_zone_lines([line]))
    fields = dkim.util.parse_tag_value(dkim.rfc822_parse(signed)[0][0][1])
    assert fields[b"a"] == {"rsa": b"rsa-sha256", "ed25519": b"ed25519-sha256"}[algorithm]
    assert (fields[b"c"], fields[b"d"], fields[b"s"]) == (
        b"relaxed/relaxed",
        DOMAIN.encode(),
        key.selector.encode(),
    )


def test_both_keys_put_two_signatures_that_both_verify(
    keys: dict[DkimAlgorithm, tuple[SigningKey, str]],
) -> None:
    signer = Signer([keys[DkimAlgorithm.rsa][0], keys[DkimAlgorithm.ed25519][0]])
    signed = signer.sign(_message())
    assert verified(signed, _dns(keys)) == [True, True]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"Subject: Friday", b"Subject: Monday"),
        (b"reader@example.ge", b"reader@example.gf"),
        (b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: no"),
        (b"Hello reader", b"Hello Reader"),
        (b"<p>Hello", b"<p>Jello"),
    ],
)
def test_a_message_altered_after_signing_fails(
    keys: dict[DkimAlgorithm, tuple[SigningKey, str]], old: bytes, new: bytes
) -> None:
    signer = Signer([keys[DkimAlgorithm.rsa][0], keys[DkimAlgorithm.ed25519][0]])
    signed = signer.sign(_message())
    assert verified(signed, _dns(keys)) == [True, True]
    altered = signed.replace(old, new, 1)
    assert altered != signed
    assert verified(altered, _dns(keys)) == [False, False]


@pytest.mark.parametrize("header", [b"From: Mallory <m@evil.example>", b"Subject: Win"])
def test_a_second_from_or_subject_added_on_the_way_breaks_the_signature(
    keys: dict[DkimAlgorithm, tuple[SigningKey, str]], header: bytes
) -> None:
    key, line = keys[DkimAlgorithm.rsa]
    signed = Signer([key]).sign(_message())
    head, _, body = signed.partition(b"\r\n\r\n")
    assert not dkim.verify(
        head + b"\r\n" + header + b"\r\n\r\n" + body, dnsfunc=from_zone_lines([line])
    )


def test_whitespace_relaxed_canonicalisation_forgives_still_verifies(
    keys: dict[DkimAlgorithm, tuple[SigningKey, str]],
) -> None:
    key, line = keys[DkimAlgorithm.rsa]
    signed = Signer([key]).sign(_message())
    refolded = signed.replace(b"Subject: Friday, June 27:", b"Subject:   Friday, June 27:\r\n ")
    assert refolded != signed and dkim.verify(refolded, dnsfunc=from_zone_lines([line]))


@pytest.mark.parametrize("reply_to", ["ed@messenger.example.ge", None])
def test_the_required_headers_are_signed_from_and_subject_twice(
    keys: dict[DkimAlgorithm, tuple[SigningKey, str]], reply_to: str | None
) -> None:
    signed = Signer([keys[DkimAlgorithm.rsa][0]]).sign(_message(reply_to))
    fields = dkim.util.parse_tag_value(dkim.rfc822_parse(signed)[0][0][1])
    names = [n.strip() for n in fields[b"h"].split(b":")]
    required = {
        b"from", b"to", b"subject", b"date", b"message-id", b"mime-version",
        b"content-type", b"list-id", b"list-unsubscribe", b"list-unsubscribe-post",
    }  # fmt: skip
    assert required <= set(names)
    assert names.count(b"from") == 2 and names.count(b"subject") == 2
    assert names.count(b"reply-to") == (1 if reply_to else 0)
    assert b"dkim-signature" not in names and b"return-path" not in names


def test_without_a_key_the_message_is_unchanged() -> None:
    message = _message()
    assert not Signer([])
    assert Signer([]).sign(message) is message


_PIECES = st.sampled_from(
    [b"a", b"b", b" ", b"  ", b"\t", b"\r\n", b"\r", b"\n", b"=", b"\r\n\r\n"]
)


@given(st.lists(st.lists(_PIECES, max_size=30).map(b"".join), min_size=1, max_size=4))
def test_the_line_by_line_body_canonicalisation_is_dkimpys(bodies: list[bytes]) -> None:
    """Whatever the body (bare CR or LF, tabs, runs, trailing blank lines), and with lines
    remembered from earlier bodies, the result is dkimpy's own relaxed body."""
    canonical = RelaxedBody()
    for body in bodies:
        assert canonical(body) == Relaxed.canonicalize_body(body)
