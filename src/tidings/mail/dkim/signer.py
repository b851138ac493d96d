"""Sign a complete message with every key of its From domain (relaxed/relaxed, SHA-256).

dkimpy does the parsing, the canonicalisation, the header selection and hashing and the
folding, in the order its own ``DKIM.sign`` and ``gen_header`` take; the private-key step is
OpenSSL's, through ``cryptography``: PKCS#1 v1.5 over the SHA-256 of the header data for RSA,
and for Ed25519 (RFC 8463) an Ed25519 signature of that same digest. A :class:`Signer` is
made once per edition or per mail (keys loaded and unsealed once); per message only the
hashing and the signatures run.
"""

import base64
import hashlib
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import dkim  # type: ignore[import-untyped]
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.hashes import SHA256
from dkim.canonicalization import (  # type: ignore[import-untyped]
    CanonicalizationPolicy,
    compress_whitespace,
    correct_empty_body,
    strip_trailing_lines,
    strip_trailing_whitespace,
)

from tidings.db.models import DkimAlgorithm
from tidings.mail.dkim.keys import PrivateKey

#: Signed once for every instance present, and once even when absent (so none can be added).
#: RFC 8058 requires List-Unsubscribe and List-Unsubscribe-Post to be signed.
ALWAYS_SIGNED = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)
#: Signed when present.
SIGNED_IF_PRESENT = (b"reply-to",)
#: Listed once more than present: a second From or Subject added on the way breaks the
#: signature instead of being shown to the reader.
OVERSIGNED = frozenset({b"from", b"subject"})
_HEADER_NAME = b"DKIM-Signature"
_POLICY = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
#: Canonical lines kept per signer: an edition's lines are nearly all the same for every reader
#: (a 30 KB digest has about 750; each reader adds about 6 of their own, and the cache starts
#: over when full). 5,000 hold a whole digest and cost about 1 MB; 50,000 were 12 MB of a
#: worker's memory, per signer kept (bench/worker_memory.py).
LINE_CACHE = 5_000
_ALGORITHM_TAG = {DkimAlgorithm.rsa: b"rsa-sha256", DkimAlgorithm.ed25519: b"ed25519-sha256"}


@dataclass(frozen=True)
class SigningKey:
    """One unsealed key, ready to sign for ``domain`` under ``selector``."""

    domain: str
    selector: str
    algorithm: DkimAlgorithm
    private: PrivateKey = field(repr=False)

    def sign_digest(self, digest: bytes) -> bytes:
        """The signature of the header hash (a SHA-256 ``digest``)."""
        if isinstance(self.private, rsa.RSAPrivateKey):
            return self.private.sign(digest, padding.PKCS1v15(), Prehashed(SHA256()))
        assert isinstance(self.private, ed25519.Ed25519PrivateKey)
        return self.private.sign(digest)


def signed_headers(headers: Sequence[Sequence[bytes]]) -> list[bytes]:
    """The ``h=`` list for a message with these (name, value) headers."""
    present = Counter(name.lower() for name, _ in headers)
    names = []
    for name in ALWAYS_SIGNED:
        names += [name] * (max(present[name], 1) + (name in OVERSIGNED))
    for name in SIGNED_IF_PRESENT:
        names += [name] * present[name]
    return names


def _split(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """(headers, body), with dkimpy's parser. Only the header block is given to it when the
    message has CRLF line ends (ours always do), so a long body is not split into lines."""
    end = message.find(b"\r\n\r\n")
    if end < 0 or b"\n" in message[:end].replace(b"\r\n", b""):
        headers, body = dkim.rfc822_parse(message)
        return headers, body
    headers, _ = dkim.rfc822_parse(message[: end + 4])
    return headers, message[end + 4 :]


def _fields(
    key: SigningKey, stamp: bytes, include: list[bytes], body_hash: bytes, b: bytes
) -> bytes:
    return b"; ".join(
        b"=".join(pair)
        for pair in (
            (b"v", b"1"),
            (b"a", _ALGORITHM_TAG[key.algorithm]),
            (b"c", _POLICY.to_c_value()),
            (b"d", key.domain.encode("ascii")),
            (b"s", key.selector.encode("ascii")),
            (b"t", stamp),
            (b"h", b" : ".join(include)),
            (b"bh", body_hash),
            (b"b", b),
        )
    )


class RelaxedBody:
    """dkimpy's relaxed body canonicalisation, line by line, each distinct line done once.

    Relaxed canonicalisation is line-local (trailing whitespace before a CRLF dropped, runs of
    whitespace made one space; dkimpy's regular expressions never cross a CRLF) but for the
    empty lines at the very end. Run over a whole 30 KB digest it costs more than the RSA
    signature; but a digest's lines are the same for every reader except the few holding a
    personal value, so each line's canonical form is kept, and per message only the new
    lines go through dkimpy's functions."""

    def __init__(self) -> None:
        self._lines: dict[bytes, bytes] = {}

    def _line(self, line: bytes) -> bytes:
        canonical: bytes = compress_whitespace(strip_trailing_whitespace(line + b"\r\n"))
        if len(self._lines) >= LINE_CACHE:
            self._lines.clear()
        self._lines[line] = canonical
        return canonical

    def __call__(self, body: bytes) -> bytes:
        lines = body.split(b"\r\n")
        last = lines.pop()  # after the final CRLF: no line end, so nothing is "trailing"
        known = self._lines
        parts = [known.get(line) or self._line(line) for line in lines]
        parts.append(compress_whitespace(last))
        result: bytes = correct_empty_body(strip_trailing_lines(b"".join(parts)))
        return result


class Signer:
    """Signs messages with every key given (at most one per algorithm: both signatures then
    go on every message, the newest key of each kind)."""

    def __init__(self, keys: Sequence[SigningKey]) -> None:
        self.keys = tuple(keys)
        self._body = RelaxedBody()

    def __repr__(self) -> str:
        return f"Signer({', '.join(f'{k.selector}._domainkey.{k.domain}' for k in self.keys)})"

    def __bool__(self) -> bool:
        return bool(self.keys)

    def sign(self, message: bytes) -> bytes:
        """``message`` with a DKIM-Signature header for each key prepended; unchanged when
        there is no key."""
        if not self.keys:
            return message
        headers, body = _split(message)
        body_hash = base64.b64encode(hashlib.sha256(self._body(body)).digest())
        canonical = _POLICY.canonicalize_headers(headers)
        include = signed_headers(headers)
        return b"".join(self._header(k, canonical, include, body_hash) for k in self.keys) + message

    def _header(
        self, key: SigningKey, canonical: list[tuple[bytes, bytes]], include: list[bytes], bh: bytes
    ) -> bytes:
        """One DKIM-Signature line, as dkimpy's ``gen_header`` makes it: fold with a stand-in
        b= (so folding after signing cannot move the tags before it), hash the headers and
        this header without b=, sign, fold again with the real b=."""
        stamp = str(int(time.time())).encode("ascii")
        folded = dkim.fold(_fields(key, stamp, include, bh, b"0" * 60), namelen=len(_HEADER_NAME))
        unsigned = (_HEADER_NAME, b" " + dkim.RE_BTAG.sub(b"\\1", folded))
        hasher = hashlib.sha256()
        dkim.hash_headers(hasher, _POLICY, canonical, include, unsigned, None)
        signature = base64.b64encode(key.sign_digest(hasher.digest()))
        value: bytes = dkim.fold(
            _fields(key, stamp, include, bh, signature) + b"\r\n", namelen=len(_HEADER_NAME)
        )
        return _HEADER_NAME + b": " + value
