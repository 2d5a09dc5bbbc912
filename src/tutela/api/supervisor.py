"""Where this node serves the API: tutelad's part (tutela.daemon.api_process) decides it,
`tutela gui` prints it."""

from __future__ import annotations

from tutela.daemon.api_process import endpoint

__all__ = ["endpoint"]
