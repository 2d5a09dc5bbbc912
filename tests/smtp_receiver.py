"""An SMTP server for the notification tests: aiosmtpd that requires STARTTLS (or takes TLS
from the start with --implicit) and a login (PLAIN or LOGIN, one user and password) before
it takes mail, and appends each mail as one JSON line {"mail_from", "rcpt_tos", "auth"
({"mechanism", "login"}), "tls", "data"} to a file. `certificate` makes the self-signed
test certificate it serves.

Run: python smtp_receiver.py ADDRESS PORT FILE CERT KEY USER PASSWORD [--implicit]
(prints "listening" once it is); or `serve` in this process.
"""

from __future__ import annotations

import datetime
import email
import email.policy
import ipaddress
import json
import logging
import ssl
import sys
import threading
import warnings
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# aiosmtpd warns at every connection of the implicit-TLS server that AUTH does not require
# STARTTLS; that connection is TLS from its first byte (see serve).
warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)


def certificate(directory: Path, address: str) -> tuple[Path, Path]:
    """A self-signed certificate for `address` (its IP in the subject alternative name),
    usable as its own CA file: (certificate, key) PEM files in `directory`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"tutela test {address}")])
    now = datetime.datetime.now(datetime.UTC)
    built = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(hours=1))
             .not_valid_after(now + datetime.timedelta(days=2))
             .add_extension(x509.SubjectAlternativeName(
                 [x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
             .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
             .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_file.write_bytes(built.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class Recorder:
    """aiosmtpd's handler: each mail taken, as one line of the file."""

    def __init__(self, record: Path) -> None:
        self.record = record
        self.written = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        entry = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                 "auth": session.auth_data, "tls": session.ssl is not None or (
                     server.transport is not None
                     and server.transport.get_extra_info("sslcontext") is not None),
                 "data": bytes(envelope.original_content or b"").decode()}
        with self.written, self.record.open("a") as file:
            file.write(json.dumps(entry) + "\n")
        return "250 OK"


def authenticator(user: str, password: str) -> Any:
    def check(server: SMTP, session: Session, envelope: Envelope, mechanism: str,
              auth_data: Any) -> AuthResult:
        good = (isinstance(auth_data, LoginPassword) and auth_data.login == user.encode()
                and auth_data.password == password.encode())
        login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else None
        return AuthResult(success=good, handled=False,
                          auth_data={"mechanism": mechanism, "login": login})
    return check


def serve(address: str, port: int, record: Path, cert: Path, key: Path, user: str,
          password: str, implicit: bool = False) -> Controller:
    """A started server (its own thread); `stop()` ends it."""
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # its own deprecation warnings
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    # aiosmtpd counts only STARTTLS as TLS for auth_require_tls: with TLS from the start
    # the connection is encrypted before the first word, so it need not be asked for.
    tls: dict[str, Any] = ({"ssl_context": context, "auth_require_tls": False} if implicit
                           else {"tls_context": context, "require_starttls": True,
                                 "auth_require_tls": True})
    controller = Controller(Recorder(record), hostname=address, port=port, auth_required=True,
                            authenticator=authenticator(user, password), **tls)
    controller.start()
    return controller


def received(record: Path) -> list[dict[str, Any]]:
    """The mails taken so far, in order, each with its parsed `message`."""
    if not record.exists():
        return []
    mails = [json.loads(line) for line in record.read_text().splitlines() if line]
    for mail in mails:
        mail["message"] = email.message_from_string(mail["data"], policy=email.policy.default)
    return mails


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]),
          Path(sys.argv[5]), sys.argv[6], sys.argv[7], "--implicit" in sys.argv[8:])
    print("listening", flush=True)
    threading.Event().wait()
