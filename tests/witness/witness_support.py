"""Test support for the witness: tutela-witness as a real process, and a cluster node's side.

Every wait is a condition with a deadline; every process started here is ended by its PID.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers import wait_until
from tutela.arbiter.messages import AcquireReply, AcquireRequest, Release
from tutela.arbiter.timing import LeaseTiming
from tutela.lcm.frame import Envelope, FrameRejected, Opener, Sealer
from tutela.lcm.handshake import PROOF, Dialler, pack
from tutela.lcm.replay import ReplayGuard
from tutela.lcm.stream import FrameSplitter
from tutela.witness import control
from tutela.witness.enroll import enroll

BIN = Path(sys.executable).parent
WITNESS = BIN / "tutela-witness"
HOST = "127.0.0.1"


def cli(state: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `tutela-witness ARGS --state-dir STATE` (the real console script)."""
    result = subprocess.run([str(WITNESS), *args, "--state-dir", str(state)], check=False,
                            capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise AssertionError(f"tutela-witness {' '.join(args)} failed: {result.stderr}")
    return result


class WitnessProcess:
    """`tutela-witness run` on 127.0.0.1 as a child process of the test."""

    def __init__(self, state: Path, port: int = 0) -> None:
        self.state = state
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None
        self.spawned_at = 0.0

    def start(self) -> WitnessProcess:
        if not WITNESS.exists():
            raise AssertionError(f"{WITNESS} is missing: run '.venv/bin/pip install -e .'")
        self.state.mkdir(parents=True, exist_ok=True)
        self.spawned_at = time.monotonic()
        with open(self.state.parent / f"{self.state.name}.stderr", "ab") as stderr:
            self.proc = subprocess.Popen(
                [str(WITNESS), "run", "--listen", f"{HOST}:{self.port}", "--state-dir",
                 str(self.state), "--log-level", "DEBUG"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
        listen = wait_until(self._listening, timeout=15, what="the witness to answer")
        self.port = int(listen[0].rsplit(":", 1)[1])
        return self

    def _listening(self) -> list[str]:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"tutela-witness exited with {self.proc.returncode}: "
                                 f"{self.log()}")
        return list(self.call("list")["witness"]["listen"])

    def call(self, op: str, **args: Any) -> Any:
        return control.call(self.state, op, timeout=5.0, **args)

    def status(self) -> dict[str, Any]:
        return dict(self.call("list"))

    def token(self, ttl: float = 60.0, cluster: str | None = None) -> str:
        return str(self.call("token", ttl=ttl, cluster=cluster)["token"])

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait for the exit; the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=timeout)
            raise AssertionError("tutela-witness did not stop on SIGTERM") from None

    def kill(self) -> None:
        """For fixtures' clean-up: end the process (by its PID) if it still runs."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log(self) -> str:
        path = self.state / control.LOG_NAME
        return path.read_text() if path.exists() else ""


@dataclass
class Cluster:
    name: str
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    voter: str = ""
    timing: LeaseTiming = field(default_factory=LeaseTiming)


def enrolled(witness: WitnessProcess, name: str, duration: float = 2.0) -> Cluster:
    cluster = Cluster(name, timing=LeaseTiming(duration=duration))
    cluster.voter = enroll(HOST, witness.port, witness.token(), name, cluster.key, "n1",
                           timing=cluster.timing)
    return cluster


class Node:
    """A cluster node's side of the witness protocol over one TCP connection (blocking).

    Frames from the witness are checked as a node would: tag, recipient, replay window. The
    handshake is done at once unless `handshake` is False (then `hello` may start it).
    """

    def __init__(self, port: int, cluster: Cluster, name: str, key: bytes | None = None,
                 incarnation: int = 1, *, handshake: bool = True) -> None:
        self.cluster = cluster
        self.name = name
        self.incarnation = incarnation
        self.key = cluster.key if key is None else key
        self.sealer = Sealer(self.key, cluster.name, name, incarnation)
        self.opener = Opener(self.key, cluster.name, name)
        self.dialler = Dialler(self.key, cluster.name, name, cluster.voter)
        self.handshake: list[bytes] = []
        """Handshake messages received (the challenge)."""
        self.sock = socket.create_connection((HOST, port), timeout=5)
        self.splitter = FrameSplitter()
        self.guard = ReplayGuard()
        self.heartbeats: list[Envelope] = []
        self.replies: dict[int, dict[str, Any]] = {}
        self.closed = False
        self._calls = 0
        self._round = 0
        if handshake:
            self.hello()
            self.sock.sendall(self.dialler.answer(self.handshake[0]))

    def hello(self, timeout: float = 5.0) -> None:
        """Send the HELLO and wait for the witness's challenge."""
        self.sock.sendall(self.dialler.hello_frame())
        self.receive(lambda: bool(self.handshake), timeout, "the witness's challenge")

    def close(self) -> None:
        self.sock.close()

    def bluff(self) -> None:
        """Say hello and answer the challenge with a made-up proof, as a node without the
        cluster's key must (its own check of the challenge fails)."""
        self.hello()
        try:
            self.sock.sendall(self.dialler.answer(self.handshake[0]))
        except FrameRejected:
            self.sock.sendall(pack(PROOF, {}, bytes(16)))

    def send(self, kind: str, payload: dict[str, Any], recipient: str | None = None) -> bytes:
        frame = self.sealer.seal(recipient or self.cluster.voter, kind, payload)
        self.sock.sendall(frame)
        return frame

    def heartbeat(self, interval: float = 0.2) -> bytes:
        return self.send("hb", {"interval": interval})

    def call(self, kind: str, payload: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        self._calls += 1
        call = self._calls
        self.send(kind, {**payload, "call": call})
        self.receive(lambda: call in self.replies, timeout, f"the reply to {kind}")
        return self.replies.pop(call)

    def next_round(self) -> int:
        self._round += 1
        return self._round

    def acquire(self, *names: str) -> AcquireReply:
        request = AcquireRequest(self.next_round(), self.incarnation, names, self.name,
                                 self.cluster.voter)
        reply = self.call(request.TYPE, request.to_payload())
        assert reply["ok"], reply
        return AcquireReply.from_payload(reply["result"])

    def release(self, *names: str) -> dict[str, Any]:
        release = Release(self.next_round(), self.incarnation, names, self.name,
                          self.cluster.voter)
        return self.call(release.TYPE, release.to_payload())

    def granted(self, name: str, timeout: float = 10.0) -> AcquireReply:
        """Ask again until `name` is granted (a new voter is quiet first)."""
        reply = wait_until(lambda: _granted(self.acquire(name), name), timeout=timeout,
                           interval=0.05, what=f"{name} granted to {self.name}")
        assert reply is not None
        return reply

    def receive(self, done: Callable[[], bool], timeout: float = 5.0, what: str = "frames") -> None:
        """Read frames until `done()`; AssertionError at the deadline or on a bad frame."""
        deadline = time.monotonic() + timeout
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                self.closed = True
                raise ConnectionError(f"the witness closed {self.name}'s connection")
            for frame in self.splitter.feed(chunk):
                self._take(frame)

    def _take(self, frame: bytes) -> None:
        if frame[3] != 0:  # a handshake message
            self.handshake.append(frame)
            return
        try:
            envelope = self.opener.open(frame)
            self.guard.accept(envelope.sender, envelope.incarnation, envelope.seq)
        except FrameRejected as rejected:
            raise AssertionError(f"{self.name} got a bad frame: {rejected}") from None
        assert envelope.sender == self.cluster.voter, envelope
        if envelope.kind == "hb":
            self.heartbeats.append(envelope)
        elif envelope.kind == "reply":
            self.replies[int(envelope.payload["call"])] = envelope.payload
        else:
            raise AssertionError(f"unexpected frame {envelope}")

    def closed_by_witness(self, timeout: float = 5.0) -> bool:
        """True once the witness closed this connection (frames meanwhile are consumed)."""
        try:
            self.receive(lambda: False, timeout, "the witness to close the connection")
        except OSError:  # ConnectionError included: closed or reset
            return True
        except AssertionError:
            return False
        return False


def _granted(reply: AcquireReply, name: str) -> AcquireReply | None:
    return reply if name in reply.granted else None


def dropped(witness: WitnessProcess, cluster: str | None, reason: str) -> int:
    status = witness.status()
    counts = (status["witness"] if cluster is None else status["clusters"][cluster])
    return int(counts["dropped_frames"][reason])
