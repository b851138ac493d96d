"""The plain-address fast path of normalise_email gives exactly what email-validator gives:
the same stored form for every address it takes, and every other address (refusals included)
goes the whole way, so its reason is email-validator's own."""

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.errors import InvalidAddress
from tidings.mail.addresses import LOCAL_PART_LIMIT, _plain_address, normalise_email

LOCAL_CHARS = "abcXYZ019._-+!#$%&'*/=?^`{|}~\"(),:;<>@[\\] é"
DOMAINS = [
    "example.ge",
    "Example.GE",
    "sub.example.co.uk",
    "xn--e1afmkfd.xn--p1ai",
    "пример.рф",
    "localhost",
    "example.test",
    "example.invalid",
    "example",
    "-bad.example",
    "bad-.example",
    "a..example",
    "[127.0.0.1]",
    "x" * 63 + ".example",
    "x" * 64 + ".example",
    ".".join(["y" * 60] * 4) + ".ge",
    "exa mple.ge",
    "",
]


def whole_way(candidate: str) -> str | None:
    """What email-validator alone makes of an address (None: refused)."""
    try:
        result = validate_email(candidate, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return None
    if result.ascii_email is None:
        return None
    local = result.ascii_email.rpartition("@")[0]
    if len(local) > LOCAL_PART_LIMIT:
        return None
    return result.ascii_email.lower()


@settings(max_examples=3000, deadline=None)
@given(local=st.text(LOCAL_CHARS, min_size=0, max_size=70), domain=st.sampled_from(DOMAINS))
def test_the_fast_path_agrees_with_email_validator(local: str, domain: str) -> None:
    candidate = f"{local}@{domain}"
    fast = _plain_address(candidate)
    if fast is not None:
        assert fast == whole_way(candidate), candidate
    try:
        stored: str | None = normalise_email(candidate)
    except InvalidAddress:
        stored = None
    assert stored == whole_way(candidate.strip()) or not candidate.strip(), candidate


@pytest.mark.parametrize(
    "candidate",
    ["nino@example.ge", "Nino.Abashidze+news@Example.GE", "a@пример.рф", "o'brien@x.example.org"],
)
def test_plain_addresses_take_the_fast_path(candidate: str) -> None:
    assert _plain_address(candidate) == whole_way(candidate)
    assert _plain_address(candidate) is not None


@pytest.mark.parametrize(
    "candidate",
    [
        "nino@localhost",
        "nino@example.test",
        '"quoted"@example.ge',
        "нино@example.ge",
        "a..b@example.ge",
        "x" * 65 + "@example.ge",
        "abcdefghij@" + ".".join(["y" * 60] * 4) + ".ge",
    ],
)
def test_other_addresses_go_the_whole_way(candidate: str) -> None:
    assert _plain_address(candidate) is None
