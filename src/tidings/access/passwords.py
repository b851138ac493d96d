"""The one password rule and the one hasher of console passwords.

A password is at least :data:`MIN_PASSWORD` characters and must not be easy to guess:
zxcvbn (dictionaries of common passwords, names and words, keyboard walks, repeats and
sequences) scores it from 0 to 4 and anything under :data:`MIN_SCORE` is refused with
zxcvbn's own advice. The console's password change, the reset link and the CLI all call
:func:`check_password`, so the rule cannot differ between them.
"""

import hashlib
import hmac
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn  # type: ignore[import-untyped]

from tidings.errors import InvalidInput
from tidings.text import as_sentence

MIN_PASSWORD = 12
#: Longer input is refused before hashing: argon2 and zxcvbn work grows with the length.
MAX_PASSWORD = 1024
#: zxcvbn's "safely unguessable" (about 10^8 guesses and up); 0-2 are refused.
MIN_SCORE = 3
#: zxcvbn refuses to score more; the first characters of a longer password are scored.
_SCORED_CHARACTERS = 72
#: zxcvbn keeps a call's user inputs in a module-wide dictionary: one call at a time.
_ZXCVBN_LOCK = threading.Lock()

HASHER = PasswordHasher()
#: Verified against when the address is unknown, so a miss costs as much as a hit.
DUMMY_HASH = HASHER.hash("tidings-no-such-user")


def check_password(password: str, *, email: str = "") -> None:
    """Refuse a password that is too short, too long or too easy to guess (InvalidInput);
    the address (and its parts) count as easy to guess for its own user."""
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"The password needs at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise InvalidInput(f"The password may have at most {MAX_PASSWORD} characters.")
    hints = [email, *email.replace("@", " ").replace(".", " ").split()] if email else []
    with _ZXCVBN_LOCK:
        result = zxcvbn(password[:_SCORED_CHARACTERS], user_inputs=hints)
    if result["score"] >= MIN_SCORE:
        return
    feedback = result["feedback"]
    advice = [feedback["warning"], *feedback["suggestions"]]
    sentences = " ".join(as_sentence(text) for text in advice if text)
    raise InvalidInput(f"That password is too easy to guess. {sentences}".strip())


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def needs_rehash(stored_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than today's (rehash on sign-in)."""
    return HASHER.check_needs_rehash(stored_hash)


def verify_password(stored_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash`` (argon2 compares in constant time)."""
    if len(password) > MAX_PASSWORD:
        password = ""  # still do the work, so a long guess costs what any guess costs
    try:
        return HASHER.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def fingerprint(secret: str, password_hash: str, session_generation: int) -> str:
    """A short keyed digest of the user's current password and sessions: a link signed
    with it dies as soon as either changes (a reset link is so used once, without a table)."""
    material = f"{password_hash}\x00{session_generation}".encode()
    return hmac.new(secret.encode(), material, hashlib.sha256).hexdigest()[:32]
