import pytest

from tidings.audience.addresses import clean_name, normalise_email, parse_mailbox
from tidings.errors import InvalidAddress


def test_addresses_are_normalised_and_lower_cased() -> None:
    assert normalise_email("  Nino.Beridze@Example.GE ") == "nino.beridze@example.ge"
    assert normalise_email("ლევანი@example.ge") == "ლევანი@example.ge"


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
