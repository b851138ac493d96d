"""Times sign-ups from a process of its own, as an attacker would: sharing no interpreter (and
no GIL) with the server, whose work after an answer must not slow the reading of it.

Run as ``python -m tests.hostile.web_stopwatch BASE`` with a JSON list of [email, forwarded
address] on stdin; prints the seconds each sign-up took, as JSON.
"""

import json
import sys
import time

import httpx

from tests.web.forms import form_to

SIGNUP = "/subscribe/daily"


def main() -> None:
    base = sys.argv[1]
    plan = json.loads(sys.stdin.read())
    times = []
    with httpx.Client(base_url=base, timeout=30) as client:
        form = form_to(client.get(SIGNUP).text, SIGNUP).hidden
        for email, forwarded in plan:
            start = time.perf_counter()
            answer = client.post(
                SIGNUP, data={**form, "email": email}, headers={"X-Forwarded-For": forwarded}
            )
            times.append(time.perf_counter() - start)
            if answer.status_code != 200 or "Check your inbox" not in answer.text:
                raise SystemExit(f"unexpected answer {answer.status_code} for {email}")
    json.dump(times, sys.stdout)


if __name__ == "__main__":
    main()
