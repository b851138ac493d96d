"""DKIM keys: names checked, pairs made, kept sealed in the database (SQLite and PostgreSQL),
the record to publish, the signer of a domain (the newest key of each algorithm)."""

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import SecretStr
from sqlalchemy import select

from tidings.config import Settings
from tidings.db.engine import Database
from tidings.db.models import DkimAlgorithm, DkimKey
from tidings.errors import ConfigError, Conflict, InvalidInput, NotFound
from tidings.mail.dkim.keys import (
    TXT_PIECE,
    dns_record,
    generate,
    load_private,
    valid_domain,
    valid_selector,
)
from tidings.mail.dkim.seal import seal, unseal
from tidings.mail.dkim.store import (
    add_key,
    key_is_readable,
    list_keys,
    load_signer,
    remove_key,
    remove_named_key,
)

OTHER_SECRET = "another-secret-key-that-is-long-enough-0123456789"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Example.ORG", "example.org"),
        ("mail.example.ge.", "mail.example.ge"),
        ("xn--80ak6aa92e.com", "xn--80ak6aa92e.com"),
    ],
)
def test_domains_are_host_names(raw: str, clean: str) -> None:
    assert valid_domain(raw) == clean


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "localhost",
        "-bad.org",
        "bad-.org",
        "a..org",
        "ex ample.org",
        "ბეჭდვა.ge",
        "a_b.org",
        "x" * 64 + ".org",
    ],
)
def test_bad_domains_are_refused_with_a_reason(raw: str) -> None:
    with pytest.raises(InvalidInput, match="domain"):
        valid_domain(raw)


@pytest.mark.parametrize(
    ("raw", "clean"), [("T202611", "t202611"), ("mail.2026", "mail.2026"), ("a-b", "a-b")]
)
def test_selectors_follow_rfc_6376(raw: str, clean: str) -> None:
    assert valid_selector(raw) == clean


@pytest.mark.parametrize("raw", ["", "-a", "a-", "_domainkey", "a..b", "a b", "a;b", "x" * 64])
def test_bad_selectors_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput, match="selector"):
        valid_selector(raw)


def test_the_rsa_record_is_split_into_quoted_strings_of_at_most_255() -> None:
    pair = generate(DkimAlgorithm.rsa)
    record = dns_record("example.org", "t202611", DkimAlgorithm.rsa, pair.public_key)
    assert record.name == "t202611._domainkey.example.org."
    assert record.value.startswith("v=DKIM1; k=rsa; p=MIIB")
    assert len(record.pieces) == 2 and all(len(p) <= TXT_PIECE for p in record.pieces)
    assert "".join(record.pieces) == record.value
    line = record.zone_line
    assert "\n" not in line
    assert line == f'{record.name} IN TXT "{record.pieces[0]}" "{record.pieces[1]}"'


def test_the_ed25519_record_carries_the_raw_32_byte_key() -> None:
    pair = generate(DkimAlgorithm.ed25519)
    record = dns_record("example.org", "e1", DkimAlgorithm.ed25519, pair.public_key)
    assert record.value == f"v=DKIM1; k=ed25519; p={pair.public_key}"
    raw = base64.b64decode(pair.public_key)
    private = load_private(pair.private_pem)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    assert raw == private.public_key().public_bytes_raw() and len(raw) == 32
    assert len(record.pieces) == 1


def test_a_key_pair_does_not_show_its_private_part() -> None:
    pair = generate(DkimAlgorithm.rsa)
    assert "PRIVATE" not in repr(pair) and "PRIVATE" not in str(pair)


def test_sealing_hides_the_key_and_another_secret_cannot_open_it(settings: Settings) -> None:
    pem = generate(DkimAlgorithm.rsa).private_pem
    sealed = seal(settings.secret, pem)
    assert unseal(settings.secret, sealed) == pem
    body = b"".join(pem.splitlines()[1:-1]).decode()
    assert "PRIVATE" not in sealed and body[:40] not in sealed
    with pytest.raises(ConfigError, match="another secret key"):
        unseal(OTHER_SECRET, sealed)
    with pytest.raises(ConfigError):
        unseal(settings.secret, sealed[:-4] + "AAAA")


def test_a_key_is_kept_sealed_and_listed_without_its_private_part(
    db: Database, settings: Settings
) -> None:
    key = add_key(db, settings, "Messenger.Example.GE", "t202611")
    assert (key.domain, key.selector, key.algorithm) == (
        "messenger.example.ge",
        "t202611",
        DkimAlgorithm.rsa,
    )
    with db.session() as session:
        row = session.scalars(select(DkimKey)).one()
        assert row.public_key == key.public_key
        assert "PRIVATE KEY" not in row.private_key_sealed
        pem = unseal(settings.secret, row.private_key_sealed)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert pem.decode() not in row.private_key_sealed
    assert [k.id for k in list_keys(db)] == [key.id]
    assert "PRIVATE" not in repr(list_keys(db))
    assert key_is_readable(settings, db, key.id)
    other = settings.model_copy(update={"secret_key": SecretStr(OTHER_SECRET)})
    assert not key_is_readable(other, db, key.id)
    assert not load_signer(db, other, "news@messenger.example.ge")  # unreadable: left out


def test_a_selector_is_taken_once_per_domain(db: Database, settings: Settings) -> None:
    add_key(db, settings, "example.org", "s1")
    with pytest.raises(Conflict, match="s1"):
        add_key(db, settings, "example.org", "S1", DkimAlgorithm.ed25519)
    add_key(db, settings, "example.net", "s1")
    assert len(list_keys(db)) == 2


def test_the_default_selector_names_the_month(db: Database, settings: Settings) -> None:
    key = add_key(db, settings, "example.org")
    assert len(key.selector) == 7 and key.selector.startswith("t20")
    assert key.selector == f"t{key.created_at:%Y%m}"
    ed = add_key(db, settings, "example.org", algorithm=DkimAlgorithm.ed25519)
    assert ed.selector == f"e{key.created_at:%Y%m}"


def test_the_signer_takes_the_newest_key_of_each_algorithm(
    db: Database, settings: Settings
) -> None:
    assert not load_signer(db, settings, "news@example.org")
    add_key(db, settings, "example.org", "old")
    newest = add_key(db, settings, "example.org", "new")
    ed = add_key(db, settings, "example.org", "ed", DkimAlgorithm.ed25519)
    add_key(db, settings, "example.net", "other")
    signer = load_signer(db, settings, "News@Example.org")
    assert [(k.selector, k.algorithm) for k in signer.keys] == [
        (newest.selector, DkimAlgorithm.rsa),
        (ed.selector, DkimAlgorithm.ed25519),
    ]
    assert "PRIVATE" not in repr(signer) and "private" not in repr(signer.keys)


def test_keys_are_removed_by_name_or_id(db: Database, settings: Settings) -> None:
    first = add_key(db, settings, "example.org", "s1")
    second = add_key(db, settings, "example.org", "s2", DkimAlgorithm.ed25519)
    assert remove_named_key(db, "EXAMPLE.org", "s1").id == first.id
    with pytest.raises(NotFound):
        remove_named_key(db, "example.org", "s1")
    assert remove_key(db, second.id).selector == "s2"
    with pytest.raises(NotFound):
        remove_key(db, second.id)
    assert list_keys(db) == []
