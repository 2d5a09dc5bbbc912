"""`python -m tutela.api`: the API process tutelad starts (tutela.daemon.api_process)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tutela.api.server import serve
from tutela.model.config import API_PORT, metrics_endpoint


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tutela.api")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--bind", default=f"0.0.0.0:{API_PORT}", help="ADDRESS[:PORT]")
    parser.add_argument("--parent", type=int, help="End when this process (tutelad) ends.")
    args = parser.parse_args()
    address, port = metrics_endpoint(args.bind, API_PORT)
    serve(args.state_dir, address, port, args.parent)


if __name__ == "__main__":
    main()
