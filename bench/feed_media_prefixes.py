"""How long the Media RSS caption rename (tidings.ingest.parse) takes on a feed that binds the
namespace to many prefixes, beside the same-size feed that binds it once (the baseline,
measured in the same run). Each pass over the document once cost a pass per prefix: 2,000
prefixes on 1.3 MB took 6.3 s, a 10 MB feed with tens of thousands of them minutes.

    .venv/bin/python bench/feed_media_prefixes.py [--prefixes 2000] [--items 20000]
"""

import argparse
import time

from tidings.ingest.parse import _without_media_descriptions

MRSS = b"http://search.yahoo.com/mrss/"


def _feed(prefixes: int, items: int) -> bytes:
    bound = b"".join(b' xmlns:p%d="%s"' % (i, MRSS) for i in range(prefixes))
    item = b"<item><title>x</title><p0:description>c</p0:description></item>"
    return b'<?xml version="1.0"?><rss version="2.0"%s><channel>%s</channel></rss>' % (
        bound,
        item * items,
    )


def _seconds(body: bytes) -> float:
    start = time.perf_counter()
    _without_media_descriptions(body)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefixes", type=int, default=2000)
    parser.add_argument("--items", type=int, default=20000)
    args = parser.parse_args()
    many = _feed(args.prefixes, args.items)
    one = _feed(1, args.items)
    one += b" " * (len(many) - len(one))  # the same size: only the prefix count differs
    baseline, hostile = _seconds(one), _seconds(many)
    print(f"document: {len(many):,} bytes")
    print(f"1 prefix (baseline): {baseline * 1000:.1f} ms")
    print(f"{args.prefixes:,} prefixes: {hostile * 1000:.1f} ms ({hostile / baseline:.1f}x)")


if __name__ == "__main__":
    main()
