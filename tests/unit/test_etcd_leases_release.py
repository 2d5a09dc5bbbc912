"""The etcd arbiter's driver ends an acquire that its release cut short, as the embedded
leases do (tests/unit/test_leases_batching.py): a self-fence that lets go of a name a
takeover still waits for must not leave that takeover waiting out its whole timeout."""

from __future__ import annotations

import asyncio

import pytest

from tutela.arbiter.timing import LeaseTiming
from tutela.daemon.etcd_leases import EtcdLeaseLetGo, EtcdLeases
from tutela.model.config import EtcdSettings


class SilentEtcd:
    """Stand-in (a fake, named so) for an etcd that takes every call and never answers:
    the acquire can only end by its timeout or by a release. No traffic leaves the test."""

    async def call(self, path: str, body: object) -> dict[str, object]:
        del path, body
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def grant(self, ttl: int) -> tuple[int, int]:
        await self.call("/v3/lease/grant", ttl)
        raise AssertionError("unreachable")

    def close(self) -> None:
        pass


def silent_etcd_leases() -> EtcdLeases:
    settings = EtcdSettings(endpoints=("http://198.51.100.231:2379",))
    leases = EtcdLeases("node1", "c", settings, LeaseTiming(), incarnation=1,
                        nodes=("node1",), fence=lambda _effect: None,
                        ask_voter=lambda _voter, _message: asyncio.sleep(0, None))
    leases.client.close()
    leases.client = SilentEtcd()  # type: ignore[assignment]
    return leases


def test_a_release_ends_an_etcd_acquire_of_the_name_at_once() -> None:
    async def main() -> None:
        leases = silent_etcd_leases()
        leases.start()
        try:
            acquire = asyncio.ensure_future(leases.acquire("h1", timeout=30, remove_time=0.1))
            await asyncio.sleep(0)  # the acquire has asked etcd for a lease
            assert leases.holds_wanted("h1")
            leases.release("h1")
            with pytest.raises(EtcdLeaseLetGo, match="'h1' was let go"):
                await asyncio.wait_for(acquire, timeout=1)
            assert not leases.holds_wanted("h1")
        finally:
            await leases.stop()

    asyncio.run(main())


def test_a_second_etcd_acquire_of_a_name_being_acquired_is_refused() -> None:
    async def main() -> None:
        leases = silent_etcd_leases()
        leases.start()
        try:
            first = asyncio.ensure_future(leases.acquire("h1", timeout=30, remove_time=0.1))
            await asyncio.sleep(0)
            with pytest.raises(RuntimeError, match="being acquired already"):
                await leases.acquire("h1", timeout=30, remove_time=0.1)
            leases.release("h1")
            with pytest.raises(EtcdLeaseLetGo):
                await first
        finally:
            await leases.stop()

    asyncio.run(main())
