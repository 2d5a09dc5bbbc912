"""The daemon's lease layer: the acquires of one event-loop turn go out as one round; an
acquire of a name held already returns at once; a second one of a name being acquired is
refused; a release of the name ends an acquire that waits for it."""

from __future__ import annotations

import asyncio
from unittest import mock

import pytest
from test_multinode_driver import until

from tutela import clock
from tutela.arbiter.messages import AcquireRequest
from tutela.daemon.leases import LeaseDeferred, LeaseLetGo, Leases, LeaseUnavailable
from tutela.engine.peer_report import parse
from tutela.lcm.messenger import Identity, Messenger
from tutela.model.config import ClusterConfig, Node


def one_node_leases(peers: tuple[str, ...] = ()) -> Leases:
    """Node a's lease layer; `peers`, other nodes and voters, never answer (its messenger
    is not started)."""
    config = ClusterConfig(name="c", nodes=(Node(name="a", addresses=("198.51.100.1/24",)),
                                            *(Node(name=peer) for peer in peers)))
    messenger = Messenger(Identity("c", "a", b"k" * 32, 1), 0.2, 5, read_report=parse)
    return Leases("a", config, messenger, 1, lambda _request: {}, lambda *_: None, NoMemory())


def test_acquires_of_one_loop_turn_share_a_round() -> None:
    async def main() -> None:
        leases = one_node_leases()
        holder = leases.holder
        with mock.patch.object(holder, "acquire_each", wraps=holder.acquire_each) as asked:
            leases.start()
            try:
                # A node taking over three hierarchies at once (its voter is itself here).
                await asyncio.gather(*(leases.acquire(name, timeout=5, remove_time=0.1)
                                       for name in ("h1", "h2", "h3")))
                assert all(leases.holds(name) for name in ("h1", "h2", "h3"))
                assert [c.args[0] for c in asked.call_args_list] == [
                    {"h1": 0.1, "h2": 0.1, "h3": 0.1}]  # one round asked for all three
                leases.release("h2")
                assert holder.wanted == ("h1", "h3")
            finally:
                await leases.stop()

    asyncio.run(main())


def test_an_acquire_of_a_name_held_already_returns_its_lease_at_once() -> None:
    """It used to wait for a win that a held lease never reports again, time out, and let
    go of the lease it held (a switchover's take beside an automatic takeover did so)."""
    async def main() -> None:
        leases = one_node_leases()
        leases.start()
        try:
            end = await leases.acquire("h1", timeout=5)
            again = await asyncio.wait_for(leases.acquire("h1", timeout=5), timeout=1)
            assert again >= end and leases.holds("h1")
        finally:
            await leases.stop()

    asyncio.run(main())


def test_a_second_acquire_of_a_name_being_acquired_is_refused() -> None:
    """Its caller keeps them apart (the ownership core, the configuration lock): a second
    one is a bug there. It used to replace the first one's waiter (the first then timed out
    and let go of the lease the second had won), then to share it (which hid the bug)."""
    async def main() -> None:
        leases = one_node_leases()
        leases.start()
        try:
            first, second = await asyncio.gather(leases.acquire("h1", timeout=5),
                                                 leases.acquire("h1", timeout=5),
                                                 return_exceptions=True)
            assert isinstance(first, float) and leases.holds("h1")
            assert isinstance(second, RuntimeError)
            assert "being acquired already" in str(second)
        finally:
            await leases.stop()

    asyncio.run(main())


def test_a_release_ends_an_acquire_of_the_name_at_once() -> None:
    """A self-fence lets go of the lease a takeover's acquire still waits for: no round asks
    for it any more, so the acquire ends at once instead of waiting out its timeout."""
    async def main() -> None:
        leases = one_node_leases(peers=("b", "c"))  # no majority without them
        leases.start()
        try:
            acquire = asyncio.ensure_future(leases.acquire("h1", timeout=30))
            await until(lambda: "h1" in leases.holder.wanted)
            leases.release("h1")
            with pytest.raises(LeaseLetGo, match="'h1' was let go"):
                await asyncio.wait_for(acquire, timeout=1)
            assert not leases.holds_wanted("h1")
            with pytest.raises(LeaseUnavailable, match="no majority"):  # not "acquired already"
                await leases.acquire("h1", timeout=0.1)
        finally:
            await leases.stop()

    asyncio.run(main())


class NoMemory:
    """A node that never ran before (an Lcd keeps this on disk)."""

    def start_lease_duration(self, duration: float) -> float:
        del duration
        return 0.0

    def settle_lease_duration(self, duration: float) -> None:
        del duration


def test_an_acquire_left_to_a_higher_rank_ends_when_a_voter_granted_it_to_that_rank() -> None:
    """Node a's own voter granted h1 to b, ranked before a: a's acquire ends at once
    (LeaseDeferred) and a no longer asks for h1, instead of keeping half the votes until its
    timeout while b, which needs them, cannot win either."""
    async def main() -> None:
        leases = one_node_leases(peers=("b",))
        b_asked = AcquireRequest(1, 7, ("h1",), "b", "a", leases.timing.duration)
        await until(lambda: not leases.voter.quiet(clock.now()))  # a new voter's quiet period
        assert leases.voter.on_acquire(b_asked, clock.now()).granted == ("h1",)
        leases.start()
        try:
            with pytest.raises(LeaseDeferred, match="b, ranked before this node"):
                await asyncio.wait_for(
                    leases.acquire("h1", timeout=5, defer_to=frozenset({"b"})), timeout=2)
            assert leases.holder.wanted == () and not leases.holds_wanted("h1")
        finally:
            await leases.stop()

    asyncio.run(main())
