"""`tutela init` makes the API's self-signed certificate (issue 16), named for this host and
the node's addresses, so that it exists before the API is first enabled."""

from __future__ import annotations

import ipaddress
import socket
import subprocess
import sys
from pathlib import Path

from cryptography import x509

BIN = Path(sys.executable).parent


def test_init_writes_the_certificate_for_the_host_and_its_addresses(tmp_path: Path) -> None:
    state = tmp_path / "state"
    subprocess.run([str(BIN / "tutela"), "--state-dir", str(state), "init", "--cluster", "c",
                    "--node", "n1", "--address", "198.51.100.7/24"],
                   check=True, capture_output=True, text=True, timeout=60)
    certificate = x509.load_pem_x509_certificate((state / "api" / "cert.pem").read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert socket.gethostname() in names.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("198.51.100.7") in names.get_values_for_type(x509.IPAddress)
    assert (state / "api" / "key.pem").stat().st_mode & 0o077 == 0
