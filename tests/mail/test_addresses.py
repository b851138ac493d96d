import pytest

from tidings.errors import InvalidAddress, InvalidInput
from tidings.mail.addresses import (
    AttributeLimits,
    attributes_json,
    clean_name,
    format_mailbox,
    normalise_email,
    parse_mailbox,
)


def test_addresses_are_normalised_and_lower_cased() -> None:
    assert normalise_email("  Nino.Beridze@Example.GE ") == "nino.beridze@example.ge"


def test_internationalised_domains_are_stored_in_ascii() -> None:
    stored = normalise_email("Levani@ტესტი.გე")
    assert stored.isascii() and stored.startswith("levani@xn--")
    assert normalise_email(stored) == stored
    assert normalise_email("nino@Пример.РФ") == "nino@xn--e1afmkfd.xn--p1ai"


def test_a_non_ascii_local_part_is_refused_with_the_reason() -> None:
    with pytest.raises(InvalidAddress, match="before the @-sign"):
        normalise_email("ლევანი@example.ge")


def test_a_local_part_over_64_characters_is_refused_with_the_reason() -> None:
    assert normalise_email("a" * 64 + "@example.ge") == "a" * 64 + "@example.ge"
    with pytest.raises(InvalidAddress, match=r"too long before the @-sign \(65 characters"):
        normalise_email("a" * 65 + "@example.ge")


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("Daily, The Paper", '"Daily, The Paper" <x@example.ge>'),
        ("news@tbilisi", '"news@tbilisi" <x@example.ge>'),
        ('The "Messenger"', '"The \\"Messenger\\"" <x@example.ge>'),
        ("Back\\slash", '"Back\\\\slash" <x@example.ge>'),
        ("The Messenger", "The Messenger <x@example.ge>"),
        ("მესენჯერი", "მესენჯერი <x@example.ge>"),
    ],
)
def test_senders_are_quoted_so_they_parse_back_the_same(name: str, shown: str) -> None:
    assert format_mailbox(name, "x@example.ge") == shown
    assert parse_mailbox(shown) == (name, "x@example.ge")


def test_an_unquoted_comma_or_at_in_a_name_is_still_read() -> None:
    assert parse_mailbox("Daily, The Paper <x@example.ge>") == ("Daily, The Paper", "x@example.ge")
    assert parse_mailbox("a@b <x@example.ge>") == ("a@b", "x@example.ge")


def test_attributes_are_capped_by_count_and_size() -> None:
    limits = AttributeLimits(count=2, size=256)
    assert attributes_json({"b": "1", "a": "2"}, limits) == '{"a":"2","b":"1"}'
    with pytest.raises(InvalidInput, match="3 attributes"):
        attributes_json({"a": "1", "b": "2", "c": "3"}, limits)
    with pytest.raises(InvalidInput, match="bytes"):
        attributes_json({"a": "x" * 300}, limits)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "nino",
        "nino@",
        "@example.ge",
        "a b@example.ge",
        "nino@example..ge",
        "x@localhost\r\nBcc: all@example.ge",
    ],
)
def test_invalid_addresses_say_why(bad: str) -> None:
    with pytest.raises(InvalidAddress):
        normalise_email(bad)


def test_names_fold_line_breaks_and_control_characters() -> None:
    assert clean_name("Nino\r\nBcc: everyone@example.ge") == "Nino Bcc: everyone@example.ge"
    assert clean_name(" Tamar\x00  Kiknadze\t") == "Tamar Kiknadze"
    assert clean_name("   ") is None


def test_mailbox_parsing_refuses_line_breaks() -> None:
    assert parse_mailbox("The Messenger <News@Messenger.ge>") == (
        "The Messenger",
        "news@messenger.ge",
    )
    with pytest.raises(InvalidAddress):
        parse_mailbox("Evil\r\nBcc: x@y.z <a@b.ge>")
