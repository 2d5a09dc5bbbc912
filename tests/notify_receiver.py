"""A webhook receiver for the notification tests: an HTTP server (the standard library's)
that appends each POST as one JSON line {"path", "headers", "body"} to a file and answers
204. With --hang it accepts connections and never answers (a target that hangs).

Run: python notify_receiver.py ADDRESS PORT FILE [--hang]; or `serve` in a thread.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def handler_for(record: Path, hang: bool) -> type[BaseHTTPRequestHandler]:
    written = threading.Lock()

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if hang:
                threading.Event().wait()  # never answers: the sender's timeout ends it
            with written, record.open("a") as file:
                file.write(json.dumps({"path": self.path, "headers": dict(self.headers),
                                       "body": body.decode()}) + "\n")
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the file is the record."""

    return Receiver


def serve(address: str, port: int, record: Path, hang: bool = False) -> ThreadingHTTPServer:
    """A started server (its own thread); `shutdown()` and `server_close()` end it."""
    server = ThreadingHTTPServer((address, port), handler_for(record, hang))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def received(record: Path) -> list[dict[str, Any]]:
    """What arrived so far, in order."""
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines() if line]


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), "--hang" in sys.argv[4:])
    print("listening", flush=True)
    threading.Event().wait()
