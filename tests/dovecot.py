"""A private dovecot IMAP server for the tests: its own configuration in a temporary
directory, IMAPS only on a free loopback port, with a self-signed certificate made here
(trusted by the test through its CA file), one passwd-file user and a maildir. Started as a
subprocess in the foreground and stopped at the end; skipped when dovecot is not installed
(fails with CI=true)."""

import datetime
import imaplib
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.smtpserver import free_port

DOVECOT = os.environ.get("TIDINGS_TEST_DOVECOT", "/usr/sbin/dovecot")
USER = "bounces"
#: A password that needs percent-encoding in the URL.
PASSWORD = "p@ss/w rd 50%"  # no colon: the passwd-file separator
START_SECONDS = 15.0


@dataclass(frozen=True)
class Dovecot:
    port: int
    ca_file: Path
    log_file: Path

    @property
    def url(self) -> str:
        """TIDINGS_BOUNCE_IMAP_URL for the user's INBOX."""
        return f"imaps://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{self.port}/INBOX"

    @contextmanager
    def client(self) -> Iterator[imaplib.IMAP4_SSL]:
        """A logged-in client of the test's own, to put mail in and look."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        imap = imaplib.IMAP4_SSL("127.0.0.1", self.port, ssl_context=context, timeout=10)
        imap.login(USER, PASSWORD)
        try:
            yield imap
        finally:
            imap.logout()

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        with self.client() as imap:
            status, _ = imap.append(folder, None, None, raw)
            assert status == "OK"

    def messages(self, folder: str) -> list[bytes]:
        """The bytes of every message in ``folder`` (none when it does not exist)."""
        with self.client() as imap:
            status, _ = imap.select(f'"{folder}"', readonly=True)
            if status != "OK":
                return []
            _, found = imap.uid("SEARCH", "ALL")
            bodies = []
            for uid in found[0].split():
                _, data = imap.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
                bodies += [bytes(item[1]) for item in data if isinstance(item, tuple)]
            return bodies

    def flags(self, folder: str = "INBOX") -> list[str]:
        with self.client() as imap:
            imap.select(f'"{folder}"', readonly=True)
            _, data = imap.fetch("1:*", "(FLAGS)")
            return [item.decode() for item in data if isinstance(item, bytes)]


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tidings test IMAP")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    return cert_file, key_file


def _accounts() -> tuple[str, str, int, int]:
    """(internal user, login user, mail uid, mail gid): dovecot's own accounts under root
    (it never serves mail as root), else everything as whoever runs the tests."""
    if os.geteuid() == 0:
        mail = pwd.getpwnam("dovecot")
        return "dovecot", "dovenull", mail.pw_uid, mail.pw_gid
    me = pwd.getpwuid(os.geteuid())
    return me.pw_name, me.pw_name, me.pw_uid, me.pw_gid


CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = {uid}
last_valid_uid = {uid}
ssl = required
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:{root}/mail/%u
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}
}}
"""


def _wait_listening(port: int, process: subprocess.Popen[bytes], log_file: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = log_file.read_text() if log_file.exists() else ""
            raise RuntimeError(f"dovecot exited with {process.returncode}: {log[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"dovecot did not listen on port {port} within {START_SECONDS} s")


@contextmanager
def dovecot(capability: str | None = None) -> Iterator[Dovecot]:
    """A running dovecot; ``capability``: the CAPABILITY it announces instead of its own (to
    leave out MOVE, say)."""
    if not Path(DOVECOT).exists():
        message = f"dovecot is not installed at {DOVECOT} (make pytest installs it as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    # Not under pytest's tmp_path: dovecot's own users must reach the maildir.
    root = Path(tempfile.mkdtemp(prefix="tidings-dovecot-"))
    root.chmod(0o755)
    internal, login, uid, gid = _accounts()
    try:
        _certificate(root)
        (root / "mail").mkdir()
        os.chown(root / "mail", uid, gid)
        home = root / "home"
        home.mkdir()
        os.chown(home, uid, gid)
        (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}:{uid}:{gid}::{home}::\n")
        port = free_port()
        config = root / "dovecot.conf"
        config.write_text(
            CONFIG.format(root=root, internal=internal, login=login, uid=uid, port=port)
            + (f"imap_capability = {capability}\n" if capability else "")
        )
        log_file = root / "dovecot.log"
        process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_listening(port, process, log_file)
            yield Dovecot(port, root / "cert.pem", log_file)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
    finally:
        shutil.rmtree(root, ignore_errors=True)
