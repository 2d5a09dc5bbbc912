"""A small etcd v3 client over the JSON gateway every etcd >= 3.4 serves on its client URL.

Five calls (lease grant, keepalive, revoke; a create-if-absent transaction; a range), each a
JSON POST with base64 keys and values, made with the standard library's http.client in a
few threads of its own, so a hanging member never holds up the event loop or its default
executor. No gRPC stack: python-etcd3 and its grpcio pin are unmaintained, and these calls
need nothing the gateway lacks (docs/arbiter.md, "The client").

Members are tried in turn: a call that fails on one (refused, timed out, no leader) tries
the next while its time lasts, and later calls start at the one that answered last.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from tutela.model.config import EtcdSettings

WORKERS = 4
"""Threads for etcd calls: enough for a keepalive per hierarchy held and a takeover."""


class EtcdUnavailable(Exception):
    """No member answered the call in time, or etcd refused it (the message says which)."""


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def unb64(text: str) -> str:
    return base64.b64decode(text).decode()


class EtcdClient:
    def __init__(self, settings: EtcdSettings, timeout: float) -> None:
        """`timeout`: seconds one call may take over all members tried."""
        self.endpoints = [urlsplit(url) for url in settings.endpoints]
        self.timeout = timeout
        self._tls = _tls_context(settings) if any(
            u.scheme == "https" for u in self.endpoints) else None
        self._current = 0
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="etcd")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the calls ----------------------------------------------------------------------

    async def grant(self, ttl: int) -> tuple[int, int]:
        """A new lease: (its id, the TTL etcd gave it, which may exceed `ttl`)."""
        answer = await self.call("/v3/lease/grant", {"TTL": ttl})
        return int(answer["ID"]), int(answer["TTL"])

    async def keepalive(self, lease_id: int) -> int:
        """Renew `lease_id`; the TTL etcd says, 0 when the lease no longer exists."""
        answer = await self.call("/v3/lease/keepalive", {"ID": str(lease_id)})
        return int(answer.get("result", answer).get("TTL", 0))

    async def revoke(self, lease_id: int) -> None:
        """Revoke `lease_id` (deleting the keys bound to it); an unknown lease is no error."""
        try:
            await self.call("/v3/lease/revoke", {"ID": str(lease_id)})
        except EtcdUnavailable as error:
            if "lease not found" not in str(error):
                raise

    async def create(self, key: str, value: str, lease_id: int) -> str | None:
        """Put `key` bound to `lease_id` if it does not exist: None when it was put, else
        the value it holds."""
        encoded = b64(key)
        answer = await self.call("/v3/kv/txn", {
            "compare": [{"key": encoded, "target": "CREATE", "result": "EQUAL",
                         "create_revision": "0"}],
            "success": [{"request_put": {"key": encoded, "value": b64(value),
                                         "lease": str(lease_id)}}],
            "failure": [{"request_range": {"key": encoded}}],
        })
        if answer.get("succeeded"):
            return None
        kvs = answer["responses"][0]["response_range"].get("kvs", [])
        return unb64(kvs[0].get("value", "")) if kvs else ""

    async def get(self, key: str) -> str | None:
        """The value of `key` (a linearizable read); None when it does not exist."""
        answer = await self.call("/v3/kv/range", {"key": b64(key)})
        kvs = answer.get("kvs", [])
        return unb64(kvs[0].get("value", "")) if kvs else None

    # -- transport ----------------------------------------------------------------------

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._call_members, path, body)

    def _call_members(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        errors = []
        for step in range(len(self.endpoints)):
            index = (self._current + step) % len(self.endpoints)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                answer = self._post(index, path, body, left)
            except (OSError, http.client.HTTPException, ValueError) as error:
                errors.append(f"{self.endpoints[index].netloc}: {error or type(error).__name__}")
                continue
            self._current = index
            return answer
        raise EtcdUnavailable("; ".join(errors) or f"no etcd member answered within "
                                                    f"{self.timeout:g}s")

    def _post(self, index: int, path: str, body: dict[str, Any],
              timeout: float) -> dict[str, Any]:
        url = self.endpoints[index]
        connection: http.client.HTTPConnection
        if url.scheme == "https":
            connection = http.client.HTTPSConnection(url.netloc, timeout=timeout,
                                                     context=self._tls)
        else:
            connection = http.client.HTTPConnection(url.netloc, timeout=timeout)
        try:
            connection.request("POST", path, json.dumps(body),
                               {"Content-Type": "application/json"})
            response = connection.getresponse()
            answer = _first_message(response.read())
        finally:
            connection.close()
        error = answer.get("error")
        if isinstance(error, dict):  # a stream's error: {"error": {"message": ...}}
            error = error.get("message")
        if response.status != 200 or error:
            raise ValueError(f"etcd said {response.status}: {error or answer}")
        return answer


def _first_message(raw: bytes) -> dict[str, Any]:
    """The gateway streams keepalive answers as one JSON object per line: take the first."""
    line = raw.strip().split(b"\n", 1)[0]
    answer = json.loads(line or b"{}")
    if not isinstance(answer, dict):
        raise ValueError(f"etcd answered {line[:80]!r}, not a JSON object")
    return answer


def _tls_context(settings: EtcdSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.ca)
    if settings.cert is not None:
        context.load_cert_chain(settings.cert, settings.key)
    return context
