"""Per-message DKIM signing cost of a 30 KB digest: Tidings' signer against plain
``dkim.sign`` (dkimpy's pure-Python RSA), in the same run.

    .venv/bin/python bench/dkim_sign.py [--messages 300] [--rounds 5]

Each round signs ``--messages`` distinct messages built by the real EditionMail (one per
reader, as the worker makes them); a round's cost is its median, and the figure printed is the
median of the rounds. Tidings' signer does the parsing, canonicalisation and hashing with
dkimpy's own functions and the private-key step with OpenSSL (``cryptography``); the baseline
is ``dkim.sign`` with the same RSA key, canonicalisation and signed headers. Every signature is
checked once with ``dkim.verify``.
"""

import argparse
import statistics
import time
from collections.abc import Callable

import dkim
from cryptography.hazmat.primitives import serialization
from personalise import mail_for, sample

from tidings.config import Settings
from tidings.db.models import DkimAlgorithm
from tidings.mail.dkim.keys import dns_record, generate, load_private
from tidings.mail.dkim.signer import Signer, SigningKey, signed_headers

DOMAIN = "messenger.example.ge"
TARGET_BYTES = 30 * 1024


def messages(count: int) -> list[bytes]:
    """``count`` readers' messages of a digest padded to about 30 KB (the sample's articles
    repeated until the digest is that large)."""
    settings = Settings(secret_key="bench-secret-key-" + "x" * 32)
    newsletter, articles = sample()
    pool = list(articles)
    while True:
        mail = mail_for(settings, newsletter, pool)
        if len(mail.message_for(0, "r@example.ge", "R", "<m@x>")) >= TARGET_BYTES:
            break
        pool += articles[: max(1, len(articles) // 4)]
    return [
        mail.message_for(i, f"reader{i}@example.ge", f"Reader {i}", f"<m{i}@{DOMAIN}>")
        for i in range(count)
    ]


def median_cost(sign: Callable[[bytes], bytes], batch: list[bytes], rounds: int) -> float:
    """Seconds per message: the median over rounds of each round's median."""
    medians = []
    for _ in range(rounds):
        timings = []
        for message in batch:
            started = time.perf_counter()
            sign(message)
            timings.append(time.perf_counter() - started)
        medians.append(statistics.median(timings))
    return statistics.median(medians)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline-messages", type=int, default=40)
    args = parser.parse_args()
    batch = messages(args.messages)
    records, keys = {}, {}
    for algorithm in DkimAlgorithm:
        pair = generate(algorithm)
        selector = f"bench-{algorithm.value}"
        keys[algorithm] = SigningKey(DOMAIN, selector, algorithm, load_private(pair.private_pem))
        record = dns_record(DOMAIN, selector, algorithm, pair.public_key)
        records[record.name.encode()] = record.value.encode()
    rsa_pem = keys[DkimAlgorithm.rsa].private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    include = signed_headers(dkim.rfc822_parse(batch[0])[0])

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    def dkimpy_sign(message: bytes) -> bytes:
        header: bytes = dkim.sign(
            message,
            b"bench-rsa",
            DOMAIN.encode(),
            rsa_pem,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=include,
        )
        return header + message

    signers = {
        "tidings, RSA 2048": Signer([keys[DkimAlgorithm.rsa]]).sign,
        "tidings, Ed25519": Signer([keys[DkimAlgorithm.ed25519]]).sign,
        "tidings, RSA + Ed25519": Signer(list(keys.values())).sign,
        "dkimpy dkim.sign, RSA 2048": dkimpy_sign,
    }
    for name, sign in signers.items():
        assert dkim.verify(sign(batch[0]), dnsfunc=dnsfunc), f"{name}: does not verify"
    size = sum(map(len, batch)) / len(batch) / 1024
    print(f"digest message {size:.1f} KB, relaxed/relaxed, {len(include)} signed header fields")
    costs = {}
    for name, sign in signers.items():
        sample_batch = batch if name.startswith("tidings") else batch[: args.baseline_messages]
        costs[name] = median_cost(sign, sample_batch, args.rounds)
        count = f"{len(sample_batch)} messages x {args.rounds} rounds"
        print(f"{name:<28}: {costs[name] * 1000:.3f} ms per message ({count})")
    ratio = costs["dkimpy dkim.sign, RSA 2048"] / costs["tidings, RSA 2048"]
    print(f"ratio                       : dkim.sign costs {ratio:.1f}x Tidings' RSA signer")


if __name__ == "__main__":
    main()
