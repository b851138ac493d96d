"""A worker's resident memory while it sends a big edition, beside the same worker sending a
small one, in the same run.

    .venv/bin/python bench/worker_memory.py [--readers 1000000] [--small 2000] [--no-dkim]

Both editions go from one `tidings worker --drain --processes 1` process into Postfix's
smtp-sink on loopback, on PostgreSQL (without --processes 1 a PostgreSQL worker is a
supervisor of one child per core, and its own memory is not a worker's). The script reads the
worker's resident set (VmRSS in /proc/PID/status) every 0.2 s and prints, for each edition,
the peak and the median of the first and last tenth of the samples: memory that stays flat
has the same figure at the end as at the start, and a peak near the small edition's. The aim:
under 150 MB for a million. The worker signs every message with an RSA DKIM key, as a
real sender does (--no-dkim: unsigned). For scale it first prints the resident set of a
Python that has only imported the command line (what every command starts from).
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import fresh_database
from smtp_throughput import ensure_postfix_tools, prepare_edition, sink

from tidings.config import load_settings
from tidings.db.engine import open_database
from tidings.db.models import DkimAlgorithm
from tidings.mail.dkim.store import add_key

#: The resident memory a worker may use while it sends an edition of any size.
AIM_MB = 150
SAMPLE_SECONDS = 0.2


def resident_mb(pid: int) -> float | None:
    """The process's resident set in MB, or None once it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def sampled_drain(port: int, env: dict[str, str]) -> tuple[list[float], float]:
    """Run `worker --drain` into the sink, sampling its memory; the samples and the time."""
    worker_env = {**env, "TIDINGS_SMTP_URL": f"smtp://127.0.0.1:{port}"}
    # Its log goes to a file: an hour of progress lines would fill a pipe nobody reads.
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "tidings", "worker", "--drain", "--processes", "1"],
            env=worker_env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        samples: list[float] = []
        while process.poll() is None:
            size = resident_mb(process.pid)
            if size is not None:
                samples.append(size)
            time.sleep(SAMPLE_SECONDS)
        elapsed = time.perf_counter() - started
        if process.returncode != 0:
            log.seek(0)
            errors = log.read().decode(errors="replace")
            raise SystemExit(f"the worker failed: {errors[-2000:]}")
    return samples, elapsed


def import_floor_mb() -> float:
    """The resident set of a Python that has only imported the command line."""
    probe = (
        "import tidings.cli.app\n"
        "from pathlib import Path\n"
        "status = Path('/proc/self/status').read_text()\n"
        "print(next(line.split()[1] for line in status.splitlines() if line.startswith('VmRSS:')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return int(done.stdout.split()[-1]) / 1024


def describe(label: str, readers: int, samples: list[float], elapsed: float) -> float:
    tenth = max(len(samples) // 10, 1)
    first = statistics.median(samples[:tenth])
    last = statistics.median(samples[-tenth:])
    peak = max(samples)
    print(
        f"{label:<14}: {readers:>9,} readers in {elapsed:7.1f} s, {len(samples):5} samples; "
        f"RSS first tenth {first:6.1f} MB, last tenth {last:6.1f} MB, peak {peak:6.1f} MB"
    )
    return peak


#: The sample newsletter's sender domain, which the DKIM key signs for.
SENDER_DOMAIN = "messenger.example.ge"


def measure(readers: int, dkim: bool) -> tuple[list[float], float]:
    with tempfile.TemporaryDirectory() as folder, fresh_database() as url:
        env, _ = prepare_edition(url, Path(folder), readers)
        if dkim:
            db = open_database(url)
            add_key(db, load_settings(), SENDER_DOMAIN, None, DkimAlgorithm.rsa)
            db.dispose()
        with sink() as port:
            return sampled_drain(port, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readers", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=2_000)
    parser.add_argument(
        "--dkim", action=argparse.BooleanOptionalAction, default=True, help="Sign (RSA)."
    )
    args = parser.parse_args()
    ensure_postfix_tools()
    print(f"import floor  : 'import tidings.cli.app' alone: RSS {import_floor_mb():6.1f} MB")
    print(f"signing       : {'an RSA DKIM key' if args.dkim else 'none (--no-dkim)'}")
    small_samples, small_s = measure(args.small, args.dkim)
    big_samples, big_s = measure(args.readers, args.dkim)
    small_peak = describe("small edition", args.small, small_samples, small_s)
    big_peak = describe("big edition", args.readers, big_samples, big_s)
    print(
        f"peak ratio    : the big edition's peak is {big_peak / small_peak:.2f}x the small one's; "
        f"aim under {AIM_MB} MB: {'met' if big_peak < AIM_MB else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
