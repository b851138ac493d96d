"""Run the npm checkers (``make mailcheck-tools`` installs them) and read their reports.

The W3C Nu HTML checker (``vnu-jar``, run by Java) and doiuse-email (run by Node through
``doiuse.mjs``). Without the tools the tests are skipped, except under CI=true, where they
fail: ``make test`` installs them first.
"""

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
VNU_JAR = HERE / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"
DOIUSE_SCRIPT = HERE / "doiuse.mjs"
DOIUSE_PACKAGE = HERE / "node_modules" / "doiuse-email" / "package.json"
#: A checker that takes longer than this has hung: the JVM's start is the slow part (~2 s).
TIMEOUT = 120.0
#: How doiuse-email words an error or a warning (utils/doiuse.js: checkFeaturesSupport).
_DOIUSE_MESSAGE = re.compile(r"^`(.+)` is (?:not|only partially) supported by `(.+)`$")


@dataclass(frozen=True)
class Finding:
    """One thing a checker said about one file: an error fails the test, a warning does not."""

    severity: str  # "error" or "warning"
    message: str
    #: Where: "line 12, column 5" for the Nu checker, the client for doiuse-email.
    where: str
    extract: str = ""
    #: doiuse-email's name of the feature (caniemail's title: "@media", "<body> element").
    feature: str = ""

    def line(self) -> str:
        extract = f" | {' '.join(self.extract.split())[:160]}" if self.extract else ""
        return f"- {self.severity} ({self.where}): {self.message}{extract}"


def require(path: Path, program: str) -> str:
    """The program's path, once the tool at ``path`` is installed; else skip (fail on CI)."""
    found = shutil.which(program)
    if found is None or not path.exists():
        missing = program if found is None else str(path.relative_to(HERE.parents[1]))
        message = f"{missing} is missing: run `make mailcheck-tools`"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI=true requires it")
        pytest.skip(message)
    return found


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=False)


def nu_checker(page: Path) -> list[Finding]:
    """The Nu HTML checker's errors and warnings about ``page`` (an HTML file)."""
    java = require(VNU_JAR, "java")
    done = _run([java, "-jar", str(VNU_JAR), "--format", "json", "--stdout", str(page)])
    if done.returncode not in (0, 1):  # 1: the page has errors; anything else: vnu broke
        raise AssertionError(f"vnu exited {done.returncode}: {done.stderr[-2000:]}")
    findings = []
    for message in json.loads(done.stdout)["messages"]:
        kind = message.get("type")
        if kind == "info" and message.get("subType") != "warning":
            continue
        severity = "warning" if kind == "info" else "error"  # error, non-document-error
        where = f"line {message.get('lastLine', '?')}, column {message.get('firstColumn', '?')}"
        findings.append(Finding(severity, message["message"], where, message.get("extract", "")))
    return findings


def can_i_email(page: Path) -> list[Finding]:
    """doiuse-email's errors (a feature one of the four clients lacks) and warnings (partly
    supported) about ``page``; notes are left out."""
    node = require(DOIUSE_PACKAGE, "node")
    done = _run([node, str(DOIUSE_SCRIPT), str(page)])
    if done.returncode != 0:
        raise AssertionError(f"doiuse.mjs exited {done.returncode}: {done.stderr[-2000:]}")
    result = json.loads(done.stdout)["files"][str(page)]
    findings = []
    for severity in ("error", "warning"):
        for message in result[severity + "s"]:
            said = _DOIUSE_MESSAGE.match(message)
            feature, client = said.groups() if said else ("", "?")
            findings.append(Finding(severity, message, client, feature=feature))
    return findings
