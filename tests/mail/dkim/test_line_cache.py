"""The signer's cache of canonical lines stays small and starts over when full: a worker signs
a million messages with one signer, each adding a few lines of its own (bench/worker_memory.py
measures the memory), and a signature made after the cache started over is as good."""

from dkim.canonicalization import Relaxed

from tidings.mail.dkim.signer import LINE_CACHE, RelaxedBody

#: A digest near the largest one sent (95 KB of HTML, its text part): about this many lines.
DIGEST_LINES = 2_000


def _body(reader: int) -> bytes:
    """A digest's body: the same lines for everyone, and a few of the reader's own."""
    shared = [b"<p>Parliament  passes the budget \t</p>=" for _ in range(DIGEST_LINES)]
    own = [f"https://messenger.example.ge/u/{reader}-{n}  ".encode() for n in range(6)]
    return b"\r\n".join([*shared, *own, b"", b""]) + b"\r\n"


def test_the_cache_holds_a_whole_digest_and_stays_bounded() -> None:
    assert DIGEST_LINES < LINE_CACHE <= 10_000
    body = RelaxedBody()
    for reader in range(3 * LINE_CACHE // 6):
        body(_body(reader))
        assert len(body._lines) <= LINE_CACHE


def test_bodies_canonicalised_across_a_fresh_start_match_dkimpy() -> None:
    body = RelaxedBody()
    readers = range(LINE_CACHE // 6 + 50)  # past the point where the cache starts over
    for reader in readers:
        raw = _body(reader)
        assert body(raw) == Relaxed.canonicalize_body(raw), reader
