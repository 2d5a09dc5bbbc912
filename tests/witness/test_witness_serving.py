"""Serving nodes: lease grants and releases, heartbeats, drops, replays, hostile clients.

One witness process serves the module (each test enrols its own clusters), over 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import time

from witness_support import HOST, Cluster, Node, WitnessProcess, dropped, enrolled

from helpers import wait_until
from tutela.arbiter.holder import Acquired, Effect, LeaseHolder, Send
from tutela.arbiter.messages import AcquireReply, AcquireRequest
from tutela.arbiter.voter import Voter
from tutela.lcm.frame import Sealer


def test_grant_refuse_release(shared_witness: WitnessProcess) -> None:
    cluster = enrolled(shared_witness, "leases")
    n1, n2 = Node(shared_witness.port, cluster, "n1"), Node(shared_witness.port, cluster, "n2")
    n1.granted("web")
    refused = n2.acquire("web")
    assert refused.granted == ()
    name, holder, remaining = refused.refused[0]
    assert (name, holder) == ("web", "n1")
    assert 0 < remaining <= cluster.timing.duration
    grants = shared_witness.status()["clusters"]["leases"]["grants"]
    assert grants["web"]["holder"] == "n1"
    released = n1.release("web")
    assert released["ok"] is True and released["result"] == {}
    assert "web" in n2.acquire("web").granted
    for node in (n1, n2):
        node.close()


def test_two_clusters_with_different_keys_are_served_at_once(
        shared_witness: WitnessProcess) -> None:
    red, blue = enrolled(shared_witness, "red"), enrolled(shared_witness, "blue")
    assert red.key != blue.key
    on_red, on_blue = Node(shared_witness.port, red, "n1"), Node(shared_witness.port, blue, "n1")
    assert "web" in on_red.granted("web").granted
    assert "web" in on_blue.granted("web").granted  # lease names are per cluster
    # A red node's key does not open blue: counted against the cluster the hello claims.
    before = dropped(shared_witness, "blue", "bad-mac")
    impostor = Node(shared_witness.port, Cluster("blue", red.key, blue.voter), "n9",
                    handshake=False)
    impostor.bluff()
    wait_until(lambda: dropped(shared_witness, "blue", "bad-mac") == before + 1,
               what="bad-mac on blue")
    status = shared_witness.status()["clusters"]
    assert status["red"]["grants"]["web"]["holder"] == "n1"
    assert status["blue"]["grants"]["web"]["holder"] == "n1"
    for node in (on_red, on_blue, impostor):
        node.close()


def test_unknown_cluster_is_dropped_and_counted(shared_witness: WitnessProcess) -> None:
    before = dropped(shared_witness, None, "unknown-cluster")
    stranger = Node(shared_witness.port, Cluster("nobody", voter="witness@x:1"), "n1",
                    handshake=False)
    stranger.sock.sendall(stranger.dialler.hello_frame())
    wait_until(lambda: dropped(shared_witness, None, "unknown-cluster") == before + 1,
               what="unknown-cluster counted")
    stranger.close()


def test_replayed_frame_is_dropped_without_a_second_answer(
        shared_witness: WitnessProcess) -> None:
    cluster = enrolled(shared_witness, "replays")
    node = Node(shared_witness.port, cluster, "n1")
    node.granted("db")
    frame = node.send("lease.release", {"type": "lease.release", "round": node.next_round(),
                                        "incarnation": 1, "names": ["db"], "holder": "n1",
                                        "voter": cluster.voter, "call": 1000})
    node.receive(lambda: 1000 in node.replies, what="the release's reply")
    del node.replies[1000]
    node.sock.sendall(frame)  # the very same bytes again
    node.call("lease.nothing", {})  # answered after the replay would have been
    assert 1000 not in node.replies
    assert dropped(shared_witness, "replays", "replay") == 1
    node.close()


def test_heartbeats_follow_the_interval_the_node_announces(
        shared_witness: WitnessProcess) -> None:
    """Two nodes announce 0.05 s and 0.2 s: the witness beats four times as often to the
    first, so the second has far fewer beats when the first has 12 (a count, not a clock)."""
    cluster = enrolled(shared_witness, "beats")
    node = Node(shared_witness.port, cluster, "n1")
    slow = Node(shared_witness.port, cluster, "n2")
    slow.heartbeat(interval=0.2)
    began = time.monotonic()
    node.heartbeat(interval=0.05)
    node.receive(lambda: len(node.heartbeats) >= 12, timeout=5.0, what="12 heartbeats")
    slow.receive(lambda: len(slow.heartbeats) >= 1, what="the slow node's beats so far")
    assert len(slow.heartbeats) < 12 / 2, (len(slow.heartbeats), "beats at 0.2 s")
    assert slow.heartbeats[-1].payload == {"interval": 0.2}
    assert node.heartbeats[-1].payload == {"interval": 0.05}
    assert node.heartbeats[-1].recipient == "n1"
    nodes = shared_witness.status()["clusters"]["beats"]["nodes"]
    assert nodes["n1"]["connections"] == 1
    since_began = time.monotonic() - began
    assert nodes["n1"]["last_heard"] <= since_began + 0.0005  # heard n1 after it beat (rounded)
    node.close()
    slow.close()


def test_unknown_kind_and_requests_for_others_get_an_error(
        shared_witness: WitnessProcess) -> None:
    cluster = enrolled(shared_witness, "errors")
    node = Node(shared_witness.port, cluster, "n1")
    reply = node.call("config.put", {})
    assert reply["ok"] is False and "does not serve 'config.put'" in reply["error"]
    forged = {"type": "lease.acquire", "round": 1, "incarnation": 1, "names": ["x"],
              "candidate": "n2", "voter": cluster.voter}
    assert "comes from 'n1'" in node.call("lease.acquire", forged)["error"]
    assert "lease message lacks" in node.call("lease.acquire", {"type": "lease.acquire"}
                                              )["error"]
    node.close()


def test_garbage_closes_that_connection_only(shared_witness: WitnessProcess) -> None:
    cluster = enrolled(shared_witness, "garbage")
    good = Node(shared_witness.port, cluster, "n1")
    good.granted("web")
    noise = socket.create_connection((HOST, shared_witness.port), timeout=5)
    noise.sendall(os.urandom(8192).replace(b"TU", b"tu"))
    stalled = socket.create_connection((HOST, shared_witness.port), timeout=5)
    stalled.sendall(Sealer(cluster.key, cluster.name, "n2", 1).seal(
        cluster.voter, "hb", {})[:20])  # half a frame, and then nothing
    assert wait_until(lambda: noise.recv(1) == b"", what="the noisy connection closed")
    assert "web" in good.acquire("web").granted  # served meanwhile, promptly
    wrong_key = Node(shared_witness.port, Cluster("garbage", bytes(32), cluster.voter), "n3",
                     handshake=False)
    wrong_key.bluff()
    assert wrong_key.closed_by_witness(), "a failed handshake closes the connection"
    assert isinstance(good.acquire("web"), AcquireReply)
    for each in (noise, stalled):
        each.close()
    for node in (good, wrong_key):
        node.close()


def test_a_lease_holder_wins_its_majority_with_the_witness_while_a_peer_is_down(
        shared_witness: WitnessProcess) -> None:
    """Two nodes and the witness; n2 is down: n1's own vote and the witness's make 2 of 3."""
    cluster = enrolled(shared_witness, "majority")
    node = Node(shared_witness.port, cluster, "n1")
    timing = cluster.timing
    own = Voter("n1", timing, started_at=time.monotonic() - timing.quiet_period)
    holder = LeaseHolder("n1", ("n1", "n2", cluster.voter), timing, incarnation=7)

    def deliver(effects: list[Effect]) -> list[Effect]:
        events: list[Effect] = []
        for effect in effects:
            if not isinstance(effect, Send) or effect.voter == "n2":
                events.append(effect)  # n2 is down: its messages are lost
            elif effect.voter == "n1" and isinstance(effect.message, AcquireRequest):
                reply = own.on_acquire(effect.message, time.monotonic())
                events += holder.on_reply(reply, time.monotonic())
            elif effect.voter == cluster.voter:
                answer = node.call(effect.message.TYPE, effect.message.to_payload())
                assert answer["ok"], answer
                if isinstance(effect.message, AcquireRequest):
                    reply = AcquireReply.from_payload(answer["result"])
                    events += holder.on_reply(reply, time.monotonic())
        return events

    events = deliver(holder.acquire(["web"], time.monotonic()))

    def acquired() -> bool:  # renewal rounds retry while the witness is still quiet
        events.extend(deliver(holder.tick(time.monotonic())))
        return any(isinstance(e, Acquired) for e in events)

    wait_until(acquired, timeout=10, interval=0.05, what="n1 to hold web")
    assert holder.holds("web", time.monotonic())
    assert shared_witness.status()["clusters"]["majority"]["grants"]["web"]["holder"] == "n1"
    deliver(holder.release(["web"], time.monotonic()))
    assert shared_witness.status()["clusters"]["majority"]["grants"] == {}
    node.close()


def test_nothing_is_taken_or_sent_before_the_handshake(shared_witness: WitnessProcess) -> None:
    cluster = enrolled(shared_witness, "preauth")
    # An authentic frame (a recorded one, say) on a connection without a handshake.
    before = dropped(shared_witness, None, "unauthenticated")
    replayer = socket.create_connection((HOST, shared_witness.port), timeout=5)
    replayer.sendall(Sealer(cluster.key, cluster.name, "n1", 1).seal(cluster.voter, "hb", {}))
    assert wait_until(lambda: replayer.recv(65536) == b"", what="the connection closed")
    assert dropped(shared_witness, None, "unauthenticated") == before + 1
    # More than a hello's worth of bytes without a handshake.
    before = dropped(shared_witness, None, "oversize")
    hoarder = socket.create_connection((HOST, shared_witness.port), timeout=5)
    hoarder.sendall(b"TU\x02\x01" + (60000).to_bytes(4, "big") + bytes(5000))
    assert wait_until(lambda: hoarder.recv(1) == b"", what="the hoarding connection closed")
    assert dropped(shared_witness, None, "oversize") == before + 1
    # A few silent connections from one address are allowed, then refused; a node that
    # completes its handshake still gets in, and the silent ones time out.
    before = dropped(shared_witness, None, "too-many-connections")
    silent = [socket.create_connection((HOST, shared_witness.port), timeout=5)
              for _ in range(10)]
    wait_until(lambda: dropped(shared_witness, None, "too-many-connections") >= before + 2,
               what="connections past the cap refused")
    timeouts = dropped(shared_witness, None, "handshake-timeout")
    wait_until(lambda: dropped(shared_witness, None, "handshake-timeout") >= timeouts + 8,
               timeout=15, what="the silent connections timed out")
    node = Node(shared_witness.port, cluster, "n1")
    node.granted("web")
    for each in (replayer, hoarder, *silent):
        each.close()
    node.close()
