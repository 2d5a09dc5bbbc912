"""Who may use the HTTPS API (docs/api.md): the role table, logins, sessions and tokens, and
the API's TLS certificate, all kept in the state directory's api/ folder.

Apart from tutela.api (the web process) so that the `tutela api` and `tutela gui` commands
can manage tokens and read the certificate without importing the web stack: the web process
imports the CLI's readers, and the CLI must not import it back."""

from __future__ import annotations

from pathlib import Path

API_DIR = "api"
"""The API's files in the state directory: cert.pem, key.pem, client-ca.pem, tokens.json."""


def api_dir(state_dir: Path) -> Path:
    return state_dir / API_DIR
