"""The API's TLS: a self-signed certificate made on first start, which the administrator may
replace with their own; a replacement is taken for new connections without a restart
(docs/api.md, "TLS").
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import ssl
from pathlib import Path

CERT_FILE, KEY_FILE = "cert.pem", "key.pem"
CLIENT_CA_FILE = "client-ca.pem"
"""If present: every client must show a certificate signed by it (docs/api.md, "TLS")."""
VALID_DAYS = 3650
log = logging.getLogger("tutela.api")


def ensure_certificate(api_dir: Path, names: list[str]) -> None:
    """Write a self-signed certificate and its key for `names` (host names and IPv4
    addresses) unless a certificate is there already."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    if (api_dir / CERT_FILE).exists():
        return
    api_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tutela")])
    alternatives: list[x509.GeneralName] = []
    for name in names:
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternatives.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
                   .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .sign(key, hashes.SHA256()))
    _write(api_dir / KEY_FILE, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    _write(api_dir / CERT_FILE, certificate.public_bytes(serialization.Encoding.PEM))


def _write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(data)
    os.replace(temporary, path)


def default_names(address: str, node_addresses: list[str]) -> list[str]:
    """What the self-signed certificate names: this host, the bound address and the node's
    addresses on the cluster networks (so that a client may check it by any of them)."""
    names = [socket.gethostname(), "localhost", "127.0.0.1"]
    for name in [address, *node_addresses]:
        if name not in ("0.0.0.0", *names):
            names.append(name)
    return names


def ensure_init_certificate(api_dir: Path, node_addresses: list[str]) -> None:
    """The certificate `tutela init` makes (issue 16): named for this host and the node's
    addresses ("A.B.C.D/P" or "A.B.C.D"); the API's first start makes it only for state
    directories initialised before."""
    ensure_certificate(api_dir, default_names("0.0.0.0", [a.split("/")[0]
                                                          for a in node_addresses]))


class ReloadingContext:
    """An SSLContext whose certificate, key and client CA are read again when one of the
    files changes (checked by `reload_if_changed`, which the server calls every few
    seconds); a handshake after the reload uses the new ones."""

    def __init__(self, api_dir: Path) -> None:
        self.api_dir = api_dir
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._stamp: tuple[float, ...] = ()
        self.reload_if_changed()

    def _files(self) -> list[Path]:
        return [self.api_dir / n for n in (CERT_FILE, KEY_FILE, CLIENT_CA_FILE)]

    def _mtimes(self) -> tuple[float, ...]:
        return tuple(p.stat().st_mtime if p.exists() else 0.0 for p in self._files())

    def reload_if_changed(self) -> bool:
        stamp = self._mtimes()
        if stamp == self._stamp:
            return False
        cert, key, client_ca = self._files()
        try:
            self.context.load_cert_chain(cert, key)
            if client_ca.exists():
                self.context.load_verify_locations(client_ca)
                self.context.verify_mode = ssl.CERT_REQUIRED
            else:
                self.context.verify_mode = ssl.CERT_NONE
        except (OSError, ssl.SSLError) as error:
            if not self._stamp:
                raise
            log.error("api: the new certificate or client CA in %s is not usable (%s); "
                      "still serving as before", self.api_dir, error)
            self._stamp = stamp
            return False
        self._stamp = stamp
        log.info("api: certificate loaded from %s", cert)
        return True
