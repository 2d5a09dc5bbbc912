"""The daemon's lease layer sends the acquires of one event-loop turn as one round."""

from __future__ import annotations

import asyncio
from unittest import mock

from tutela.daemon.leases import Leases
from tutela.engine.peer_report import parse
from tutela.lcm.messenger import Identity, Messenger
from tutela.model.config import ClusterConfig, Node


def test_acquires_of_one_loop_turn_share_a_round() -> None:
    async def main() -> None:
        config = ClusterConfig(name="c", nodes=(Node(name="a", addresses=("198.51.100.1/24",)),))
        messenger = Messenger(Identity("c", "a", b"k" * 32, 1), 0.2, 5, read_report=parse)
        leases = Leases("a", config, messenger, 1, lambda _request: {}, lambda *_: None,
                        NoMemory())
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


class NoMemory:
    """A node that never ran before (an Lcd keeps this on disk)."""

    def start_lease_duration(self, duration: float) -> float:
        del duration
        return 0.0

    def settle_lease_duration(self, duration: float) -> None:
        del duration
