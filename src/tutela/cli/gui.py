"""`tutela gui`: where this node's browser GUI is (docs/gui.md). The GUI is served by the
HTTPS API process (docs/api.md) at the site's root; this reads the node's configuration
(so it works with tutelad stopped too) and prints the URL, with the fingerprint of the
certificate the browser is shown, to compare before trusting it."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

import click

from tutela.cli import output
from tutela.cli.main import EXIT_INVALID, _NodeCommand, json_option, state_dir
from tutela.doctor.probes import stored_config
from tutela.model.config import ClusterConfig

ANY_ADDRESS = "0.0.0.0"


@click.command("gui", cls=_NodeCommand,
               context_settings={"help_option_names": ["-h", "--help"]})
@json_option
def gui_command(as_json: bool) -> None:
    """Print the URL of this node's browser GUI, and its certificate's SHA-256 fingerprint.
    Exit 2 when this node does not serve the API (how to turn it on is said)."""
    stored = stored_config(state_dir())
    if stored is None:
        output.print_error(f"no configuration in {state_dir()}: this node is not "
                           "initialised; run 'tutela init --cluster NAME' or 'tutela join'",
                           fix="tutela init --cluster NAME, or tutela join")
        sys.exit(EXIT_INVALID)
    node, config = stored
    url = gui_url(config, node)
    if url is None:
        fix = (f"tutela config set settings.api.enabled true (every node), or tutela config "
               f"set 'nodes[{node}].api_address' ADDRESS[:PORT] (docs/api.md)")
        output.print_error(f"node {node} does not serve the HTTPS API, and so no GUI "
                           f"(settings.api.enabled is false and nodes[{node}].api_address is "
                           f"not set); turn it on: {fix}", fix=fix)
        sys.exit(EXIT_INVALID)
    fingerprint = certificate_fingerprint(state_dir())
    if as_json:
        output.print_json({"node": node, "url": url, "certificate_sha256": fingerprint})
        return
    click.echo(url)
    if fingerprint:
        click.echo(f"certificate SHA-256 {fingerprint}", err=True)


def gui_url(config: ClusterConfig, node: str) -> str | None:
    """https://ADDRESS:PORT/ where `node` serves the GUI; on every address (0.0.0.0), its
    first cluster address. None: it serves none."""
    from tutela.daemon.api_process import endpoint

    where = endpoint(config, node)
    if where is None:
        return None
    address, port = where
    entry = config.node(node)
    if address == ANY_ADDRESS and entry is not None and entry.addresses:
        address = str(ipaddress.IPv4Interface(entry.addresses[0]).ip)
    return f"https://{address}:{port}/"


def certificate_fingerprint(directory: Path) -> str | None:
    """The SHA-256 fingerprint (AA:BB:...) of the API's certificate; None before the API
    made it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    from tutela.apiauth import api_dir
    from tutela.apiauth.tls import CERT_FILE

    path = api_dir(directory) / CERT_FILE
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()
