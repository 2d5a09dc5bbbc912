"""The ownership driver (daemon/ownership.py) and its core on one node, over the real lease
layer: the core starts no action on a hierarchy while the driver still acts on it.

CI's stuck-state lab test saw a decision start a takeover of `app` while an acquire of
`app` was still in flight. The path, reproduced here: a lease that ended unnoticed (the
lease layer's timer runs late, as on a loaded or frozen node) is reported lost while the
takeover that followed it asks for the lease again; the self-fence that this starts ended
and freed the hierarchy, while that acquire went on waiting (for a lease the self-fence
had let go, so in vain, up to its timeout).

A real engine with the recording kit (the unit tests' test double for kit actions), a real
messenger that is not started (node2 never answers: `quorum: none` lets node1's own voter
decide) and the real lease layer, whose timer loop starts only when the test says; the
decision ticks are called by the test, as daemon/ownership.py's loop calls them. The lease
holder's part of the path is shown on its own too, with real voters.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from recording_kit import World
from test_leases_batching import NoMemory
from test_multinode_driver import MemoryStore, until

from tutela import clock
from tutela.arbiter.holder import Acquired, LeaseHolder, LeaseLost, Refused, Send
from tutela.arbiter.holder import Effect as HolderEffect
from tutela.arbiter.messages import AcquireReply, AcquireRequest
from tutela.arbiter.timing import LeaseTiming
from tutela.arbiter.voter import Voter
from tutela.daemon.leases import Leases
from tutela.daemon.ownership import Ownership
from tutela.engine.node import NodeEngine
from tutela.engine.ownership_core import Acquire, Effect, FenceSelf, GiveUp, Restore
from tutela.engine.peer_report import PeerReport, parse
from tutela.lcm.messenger import Identity, Messenger
from tutela.model.config import ClusterConfig

ROOT = "app"
LEASE = 0.5


def config() -> ClusterConfig:
    nodes = ("node1", "node2")
    return ClusterConfig.model_validate({
        "name": "t", "nodes": [{"name": n} for n in nodes],
        "resources": [{"tag": ROOT, "kit": "recording", "check_interval": 5.0}],
        "hierarchies": [{"root": ROOT, "target": "in_service", "equivalencies": [
            {"node": n, "priority": i + 1} for i, n in enumerate(nodes)]}],
        "settings": {"quorum": "none", "lease_duration": LEASE, "fencing": "agent",
                     "fence_command": "true"}})


def decide(ownership: Ownership) -> list[Effect]:
    """One decision tick, carried out as the driver's loop does; it must not start an
    action on a hierarchy that an acquire of this node still waits for."""
    effects = ownership.core.tick(ownership._situation())
    for effect in effects:
        if isinstance(effect, Acquire | Restore | GiveUp | FenceSelf):
            assert effect.root not in ownership.leases._waiters, (
                f"{effect} started while an acquire of {effect.root} is still in flight")
        ownership._start(effect)
    return effects


def granted_to_node2(leases: Leases) -> bool:
    """node2 asks node1's voter for the lease (it takes over, or tries to); whether the
    voter granted it (not while node1's grant lasts there)."""
    reply = leases._vote(AcquireRequest(1, 7, (ROOT,), "node2", "node1", LEASE))["reply"]
    return ROOT in AcquireReply.from_payload(reply).granted


def test_a_self_fence_that_ends_while_an_acquire_waits_does_not_free_the_hierarchy(
        world: World, tmp_path: Path) -> None:
    async def main() -> None:
        cfg = config()
        engine = NodeEngine(cfg, MemoryStore(), tmp_path)
        engine.update_config(cfg)
        messenger: Messenger[PeerReport] = Messenger(
            Identity("t", "node1", b"k" * 32, 1), 0.2, 5, read_report=parse)
        leases = Leases("node1", cfg, messenger, 1, lambda _request: {}, lambda *_: None,
                        NoMemory())
        ownership = Ownership("node1", engine, leases, messenger)
        try:
            # the voter of a node that just started grants nothing for a lease
            await until(lambda: clock.now() >= leases.voter.quiet_until)
            await ownership.take(ROOT)  # held and in service here
            assert leases.holds(ROOT) and ROOT in world.running
            # Its timer loop not running, the lease layer neither renews the lease nor
            # notices that it ended; node2 asks for it meanwhile.
            await until(lambda: not leases.holds(ROOT))
            await until(lambda: granted_to_node2(leases))
            [acquire] = [e for e in decide(ownership) if isinstance(e, Acquire)]
            assert acquire.readopt  # in service here without its lease: win it back
            leases.start()  # late: the lease is reported lost now, the round refused
            await until(lambda: ROOT not in world.running and not leases.holds_wanted(ROOT))
            # the self-fence took it out (quorum-loss action) and let the lease go; the
            # decisions go on, and the takeover comes back here once node2's grant ends
            async with asyncio.timeout(10):
                while not (leases.holds(ROOT) and ROOT in world.running):
                    decide(ownership)
                    await asyncio.sleep(cfg.settings.heartbeat_interval / 4)
            assert world.actions("restore") == [ROOT, ROOT]
        finally:
            await ownership.stop()
            await leases.stop()
            await engine.shutdown(leave_resources=True)

    asyncio.run(main())


def test_a_lease_that_ended_unnoticed_is_reported_lost_by_a_lost_round_for_it() -> None:
    """The lease holder's side of that path (arbiter/holder.py, pure): node1's lease ended
    before its timer noticed; node1 asks for it again (the takeover that followed) while
    node3 holds it at a majority of voters. The lost round reports the old lease lost, and
    the name stays wanted: the acquire goes on waiting beside the self-fence it starts."""
    timing, names = LeaseTiming(), ("node1", "node2", "node3")
    voters = {name: Voter(name, timing, started_at=-100.0) for name in names}
    holders = {name: LeaseHolder(name, names, timing, incarnation=i)
               for i, name in enumerate(names)}

    def round_of(candidate: str, effects: list[HolderEffect], now: float
                 ) -> list[HolderEffect]:
        """Every voter answers at once; what the candidate's holder makes of it."""
        found: list[HolderEffect] = []
        for send in (e for e in effects if isinstance(e, Send)):
            assert isinstance(send.message, AcquireRequest)
            reply = voters[send.voter].on_acquire(send.message, now)
            found += holders[candidate].on_reply(reply, now)
        return found

    won = round_of("node1", holders["node1"].acquire([ROOT], 0.0), 0.0)
    [acquired] = [e for e in won if isinstance(e, Acquired)]
    later = acquired.until + timing.duration * 2  # every grant of node1's has ended
    round_of("node3", holders["node3"].acquire([ROOT], later), later)  # node3 holds it
    lost = round_of("node1", holders["node1"].acquire([ROOT], later), later)
    assert [type(e) for e in lost if not isinstance(e, Send)] == [LeaseLost, Refused]
    assert holders["node1"].wanted == (ROOT,)
