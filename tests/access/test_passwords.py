"""The one password rule: long enough, and not easy to guess by zxcvbn's measure, with
zxcvbn's own advice as the reason."""

import pytest

from tidings.access.passwords import (
    MAX_PASSWORD,
    check_password,
    fingerprint,
    hash_password,
    verify_password,
)
from tidings.errors import InvalidInput


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short-one", "at least 12 characters"),
        ("aaaaaaaaaaaa", 'Repeats like "aaa" are easy to guess.'),
        ("abcdefghijkl", "Sequences like"),
        ("password1234", "This is a very common password."),
        ("qwertyuiop12", "similar to a commonly used password"),
        ("x" * (MAX_PASSWORD + 1), f"at most {MAX_PASSWORD}"),
    ],
)
def test_weak_passwords_are_refused_with_a_reason(password: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_password(password)
    assert reason in str(refused.value)
    assert str(refused.value).endswith(".")


def test_the_users_own_address_is_easy_to_guess() -> None:
    check_password("tseretelikakhaber")  # fine for anyone else
    with pytest.raises(InvalidInput, match="too easy to guess"):
        check_password("tseretelikakhaber", email="kakhaber.tsereteli@example.ge")


@pytest.mark.parametrize(
    "password",
    ["correct-horse-battery-staple", "a new and long password", "Tr0ub4dor&3xy", "ნიავი-ქარი-მთა"],
)
def test_good_passwords_pass(password: str) -> None:
    check_password(password)


def test_a_long_password_is_judged_by_its_first_characters() -> None:
    check_password("correct-horse-battery-staple" + "x" * 500)
    with pytest.raises(InvalidInput, match="too easy"):
        check_password("x" * 80 + "correct-horse-battery-staple")


def test_hashes_verify_and_fingerprints_follow_the_password() -> None:
    stored = hash_password("correct-horse-battery-staple")
    assert verify_password(stored, "correct-horse-battery-staple")
    assert not verify_password(stored, "correct-horse-battery-stapler")
    assert not verify_password("not a hash", "anything")
    assert not verify_password(stored, "x" * (MAX_PASSWORD + 1))
    other = hash_password("correct-horse-battery-staple")
    assert fingerprint("k" * 32, stored, 0) == fingerprint("k" * 32, stored, 0)
    assert fingerprint("k" * 32, stored, 0) != fingerprint("k" * 32, other, 0)
    assert fingerprint("k" * 32, stored, 0) != fingerprint("k" * 32, stored, 1)
    assert fingerprint("k" * 32, stored, 0) != fingerprint("j" * 32, stored, 0)
