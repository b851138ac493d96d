"""Per-message build of a digest (``EditionMail.message_for``): this checkout against a base
commit's code, in the same run.

    .venv/bin/python bench/message_build.py [--base 4a045ea] [--messages 200] [--rounds 15]

The base commit's ``src/`` and templates are unpacked (``git archive``) into a temporary
folder; two child processes, one importing the base's ``tidings`` and one this checkout's,
take turns building the same batch of ``--messages`` readers' messages of the sample digest
(12 articles, about 40 KB), so that a shared machine's load falls on both alike. Each batch's
figure is its median CPU time per message; printed are the medians over the batches and the
median of the batches' ratios. Both must build the same bytes for the same readers (the
children compare digests of them; the per-edition boundary left out).
"""

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def serve() -> None:
    """Child: for each line "<start> <count>" on stdin, build ``count`` readers' messages and
    print the median CPU seconds per message and a digest of the bytes."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from personalise import mail_for, sample

    from tidings.config import Settings

    settings = Settings(secret_key="bench-secret-key-" + "x" * 32)
    newsletter, articles = sample()
    mail = mail_for(settings, newsletter, articles)
    # The boundary is drawn per edition: left out of the comparison.
    boundary = mail._template.boundary.encode()
    for line in sys.stdin:
        start, count = map(int, line.split())
        timings, digest = [], hashlib.sha256()
        for i in range(start, start + count):
            began = time.process_time()
            message = mail.message_for(i, f"reader{i}@example.ge", f"Reader {i}", f"<m{i}@x>")
            timings.append(time.process_time() - began)
            digest.update(message.replace(boundary, b"BOUNDARY"))
        print(statistics.median(timings), digest.hexdigest()[:16], len(message), flush=True)


def base_source(commit: str, folder: Path) -> Path:
    """The base commit's ``src/`` (and the templates and sample it reads) under ``folder``."""
    # Imported here, not at the top: the children run this file too, and import only what
    # they measure.
    from common import tree_at

    tree_at(commit, folder, "src", "templates")
    return folder / "src"


def child(source: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--child"],
        env={**os.environ, "PYTHONPATH": str(source)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def ask(process: subprocess.Popen[str], start: int, count: int) -> tuple[float, str, int]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(f"{start} {count}\n")
    process.stdin.flush()
    seconds, digest, size = process.stdout.readline().split()
    return float(seconds), digest, int(size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="4a045ea")
    parser.add_argument("--messages", type=int, default=200, help="per batch")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        serve()
        return
    with tempfile.TemporaryDirectory() as folder:
        old, new = child(base_source(args.base, Path(folder))), child(ROOT / "src")
        ratios, olds, news, same = [], [], [], True
        try:
            for round_ in range(args.rounds):
                start = round_ * args.messages
                first, second = (old, new) if round_ % 2 == 0 else (new, old)
                answers = {first: ask(first, start, args.messages)}
                answers[second] = ask(second, start, args.messages)
                olds.append(answers[old][0])
                news.append(answers[new][0])
                ratios.append(answers[new][0] / answers[old][0])
                same = same and answers[old][1] == answers[new][1]
                size = answers[new][2]
        finally:
            for process in (old, new):
                assert process.stdin is not None
                process.stdin.close()
                process.wait()
    print(f"digest of {size / 1024:.1f} KB, {args.rounds} batches of {args.messages} readers")
    print(f"base {args.base:10s}: median {statistics.median(olds) * 1e6:7.1f} us per message")
    print(f"this checkout   : median {statistics.median(news) * 1e6:7.1f} us per message")
    print(
        f"ratio           : {statistics.median(ratios):.2f} of the base's time (median of the "
        f"batches' ratios); same bytes: {same}"
    )


if __name__ == "__main__":
    main()
