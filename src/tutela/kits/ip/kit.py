"""The ip kit: a virtual IPv4 address that moves with its hierarchy, added over netlink.

Refuses an address that already answers ARP elsewhere; announces itself with gratuitous ARP.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator

from tutela.kits.base import ActionContext, CheckResult, Kit, KitError, KitParams
from tutela.kits.ip import arp
from tutela.kits.procutil import Deadline

if TYPE_CHECKING:  # pyroute2 loads in ~0.2 s: only kit actions need it, not the CLI
    from pyroute2 import IPRoute

AF_INET = 2
FRESH_PROBE = 1.0
"""Seconds a pre-check's "nobody answers" stays good enough for the restore that follows."""
FAST_DUPLICATE_TIMEOUT = 0.02
"""Seconds: `duplicate_timeout` under the fast profile (docs/leases.md, "Fast profile"),
where the probe runs after the fence, in the failover's path. A host that holds the address
answers from its kernel in well under a millisecond on a LAN, and an answer that came in
before the wait ended counts even when the prober reads it late (arp.probe)."""
EEXIST = 17
EADDRNOTAVAIL = 99
_IFNAME = re.compile(r"^[^\s/:]{1,15}$")


class IpParams(KitParams):
    address: IPv4Interface = Field(
        description="Virtual IPv4 address with prefix length, e.g. 198.51.100.50/24.")
    interface: str | None = Field(
        default=None,
        description="Network interface to put the address on; default: the interface that "
                    "already has an address in the same subnet.")
    arp_count: int = Field(
        default=3, ge=0, le=100,
        description="Gratuitous ARP packets sent after the address is added (0 = none).")
    arp_interval: float = Field(
        default=0.2, ge=0.0, le=5.0, description="Seconds between gratuitous ARP packets.")
    ping_list: list[IPv4Address] = Field(
        default_factory=list,
        description="Addresses that must each answer one ping for quick_check to pass; "
                    "a list or a comma-separated string.")
    duplicate_check: bool = Field(
        default=True,
        description="Before restoring, probe with ARP and refuse if another host holds the "
                    "address.")
    duplicate_timeout: float = Field(
        default=0.1, gt=0.0, le=10.0,
        description="Seconds to wait for an answer to the duplicate-address probe.")

    @field_validator("address", mode="before")
    @classmethod
    def _address(cls, value: Any) -> Any:
        if not isinstance(value, str) or "/" not in value:
            raise ValueError("give an IPv4 address with its prefix length, "
                             "e.g. 198.51.100.50/24")
        iface = IPv4Interface(value.strip())
        if iface.network.prefixlen < 31 and iface.ip in (
                iface.network.network_address, iface.network.broadcast_address):
            raise ValueError(f"{iface.ip} is the network or broadcast address of "
                             f"{iface.network}; give a host address")
        return iface

    @field_validator("interface")
    @classmethod
    def _interface(cls, value: str | None) -> str | None:
        if value is not None and not _IFNAME.match(value):
            raise ValueError("not an interface name (1-15 characters, no '/', ':' or spaces)")
        return value

    @field_validator("ping_list", mode="before")
    @classmethod
    def _ping_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value


@dataclass(frozen=True)
class _Link:
    index: int
    name: str
    up: bool
    state: str


@contextmanager
def _netlink() -> Iterator[IPRoute]:
    from pyroute2 import IPRoute

    try:
        ipr = IPRoute()
    except OSError as exc:
        raise KitError(f"cannot open netlink: {exc}") from exc
    with ipr:
        yield ipr


def _link(ipr: IPRoute, index: int) -> _Link:
    msg = ipr.get_links(index)[0]
    state = str(msg.get("operstate") or "UNKNOWN")
    carrier = msg.get("carrier")
    return _Link(index, str(msg.get("ifname")), state == "UP" or carrier == 1, state)


def _has_address(ipr: IPRoute, index: int, address: IPv4Interface) -> bool:
    return any(msg.get("prefixlen") == address.network.prefixlen
               for msg in ipr.get_addr(family=AF_INET, index=index, address=str(address.ip)))


def _holders(ipr: IPRoute, address: IPv4Interface) -> list[int]:
    """Indexes of the interfaces that carry exactly this address and prefix."""
    return [int(msg["index"]) for msg in ipr.get_addr(family=AF_INET, address=str(address.ip))
            if msg.get("prefixlen") == address.network.prefixlen]


class IpKit(Kit[IpParams]):
    name: ClassVar[str] = "ip"
    description: ClassVar[str] = (
        "Virtual IPv4 address: added to an interface over netlink, announced with "
        "gratuitous ARP, refused when another host already answers for it.")
    Params: ClassVar[type[KitParams]] = IpParams
    fence_first: ClassVar[bool] = True

    def prepare(self) -> None:
        """Import pyroute2 now: 0.25 s on a quiet machine, up to a second on a loaded one,
        which a node's first takeover of an address would wait for."""
        import pyroute2  # noqa: F401

    def __init__(self) -> None:
        self._announcing: dict[IPv4Address, threading.Event] = {}
        """Address -> stops its gratuitous ARP still being sent from a thread."""
        self._found_free: dict[IPv4Address, float] = {}
        """Address -> monotonic time a probe last found it free, so a restore right after
        its pre-check does not wait for a second probe (failover time)."""

    def pre_restore_check(self, ctx: ActionContext[IpParams]) -> None:
        with _netlink() as ipr:
            link = self._resolve(ipr, ctx.params)
            if not _has_address(ipr, link.index, ctx.params.address):
                self._refuse_duplicate(ctx, link)

    def restore(self, ctx: ActionContext[IpParams]) -> None:
        p = ctx.params
        with _netlink() as ipr:
            link = self._resolve(ipr, p)
            if _has_address(ipr, link.index, p.address):
                ctx.log.info("%s is already on %s; nothing to do", p.address, link.name)
                return
            if not link.up:
                raise KitError(f"interface {link.name} is down (operstate {link.state}, no "
                               f"carrier); bring the link up or choose another interface")
            probed = self._found_free.pop(p.address.ip, float("-inf"))
            if time.monotonic() - probed >= FRESH_PROBE:
                self._refuse_duplicate(ctx, link)
            self._add(ctx, ipr, link)
        self._announce(ctx, link)

    def remove(self, ctx: ActionContext[IpParams]) -> None:
        p = ctx.params
        announcing = self._announcing.pop(p.address.ip, None)
        if announcing is not None:
            announcing.set()
        with _netlink() as ipr:
            indexes = _holders(ipr, p.address)
            if p.interface is not None:
                wanted = ipr.link_lookup(ifname=p.interface)
                indexes = [i for i in indexes if i in wanted]
            if not indexes:
                ctx.log.info("%s is not on this node; nothing to remove", p.address)
            for index in indexes:
                self._delete(ctx, ipr, _link(ipr, index))

    def check_here(self, params: IpParams) -> list[tuple[str, str]]:
        try:
            with _netlink() as ipr:
                self._resolve(ipr, params)
        except KitError as error:
            return [("interface" if params.interface else "address", str(error))]
        return []

    def quick_check(self, ctx: ActionContext[IpParams]) -> CheckResult:
        p = ctx.params
        deadline = Deadline(ctx.timeout)
        try:
            with _netlink() as ipr:
                link = self._resolve(ipr, p)
                if not _has_address(ipr, link.index, p.address):
                    return CheckResult(False, f"{p.address} is not on {link.name}")
                if not link.up:
                    return CheckResult(False, f"{link.name} is down (operstate {link.state})")
            silent = _unanswered_pings(p.ping_list, deadline)
        except KitError as exc:
            return CheckResult(False, str(exc))
        if silent:
            return CheckResult(False, "no ping reply from " + ", ".join(map(str, silent)))
        return CheckResult(True)

    def _resolve(self, ipr: IPRoute, p: IpParams) -> _Link:
        """The interface named in the parameters, or the one on the address's subnet."""
        if p.interface is not None:
            found = ipr.link_lookup(ifname=p.interface)
            if not found:
                raise KitError(f"interface {p.interface} does not exist on this node; fix "
                               f"the interface parameter or create the interface")
            return _link(ipr, found[0])
        indexes = sorted({int(msg["index"]) for msg in ipr.get_addr(family=AF_INET)
                          if p.address.ip in _network_of(msg)})
        if not indexes:
            raise KitError(f"no interface has an address in {p.address.network}; set the "
                           f"interface parameter")
        if len(indexes) > 1:
            names = ", ".join(_link(ipr, i).name for i in indexes)
            raise KitError(f"several interfaces ({names}) have addresses in "
                           f"{p.address.network}; set the interface parameter")
        return _link(ipr, indexes[0])

    def _refuse_duplicate(self, ctx: ActionContext[IpParams], link: _Link) -> None:
        p = ctx.params
        if not p.duplicate_check:
            ctx.log.info("duplicate check disabled; not probing for %s", p.address.ip)
            return
        ctx.log.info("probing %s for %s (ARP, %.2fs) before taking it",
                     link.name, p.address.ip, p.duplicate_timeout)
        try:
            mac = arp.probe(link.name, p.address.ip, p.duplicate_timeout)
        except OSError as exc:
            raise KitError(f"cannot send the ARP probe for {p.address.ip} on {link.name}: "
                           f"{exc}; set duplicate_check=false to skip it") from exc
        if mac:
            raise KitError(f"address {p.address.ip} already answers on {link.name} from MAC "
                           f"{mac}; another node holds it")
        self._found_free[p.address.ip] = time.monotonic()

    def _add(self, ctx: ActionContext[IpParams], ipr: IPRoute, link: _Link) -> None:
        from pyroute2.netlink.exceptions import NetlinkError

        a = ctx.params.address
        extra = {"broadcast": str(a.network.broadcast_address)} if a.network.prefixlen < 31 else {}
        try:
            ipr.addr("add", index=link.index, address=str(a.ip),
                     prefixlen=a.network.prefixlen, **extra)
        except NetlinkError as exc:
            if exc.code != EEXIST:
                raise KitError(f"cannot add {a} to {link.name}: {exc}") from exc
        ctx.log.info("added %s to %s", a, link.name)

    def _delete(self, ctx: ActionContext[IpParams], ipr: IPRoute, link: _Link) -> None:
        from pyroute2.netlink.exceptions import NetlinkError

        a = ctx.params.address
        try:
            ipr.addr("del", index=link.index, address=str(a.ip), prefixlen=a.network.prefixlen)
        except NetlinkError as exc:
            if exc.code != EADDRNOTAVAIL:
                raise KitError(f"cannot remove {a} from {link.name}: {exc}") from exc
        ctx.log.info("removed %s from %s", a, link.name)

    def _announce(self, ctx: ActionContext[IpParams], link: _Link) -> None:
        p = ctx.params
        try:
            previous = self._announcing.get(p.address.ip)
            if previous is not None:
                previous.set()  # one announcement at a time per address
            stop = self._announcing[p.address.ip] = threading.Event()
            sent = arp.announce(link.name, p.address.ip, p.arp_count, p.arp_interval, stop)
        except OSError as exc:
            ctx.log.warning("gratuitous ARP for %s on %s failed (%s); neighbours learn the "
                            "new MAC only when their ARP entries expire",
                            p.address.ip, link.name, exc)
            return
        ctx.log.info("sent the first of %d gratuitous ARP for %s on %s (the rest follow "
                     "%gs apart)", sent, p.address.ip, link.name, p.arp_interval)


def _network_of(msg: Any) -> IPv4Network:
    local = msg.get("IFA_LOCAL") or msg.get("IFA_ADDRESS")
    return IPv4Interface(f"{local}/{msg.get('prefixlen')}").network


def _unanswered_pings(targets: list[IPv4Address], deadline: Deadline) -> list[IPv4Address]:
    """Ping every target once, in parallel; return those that did not answer in time."""
    try:
        procs = {t: subprocess.Popen(["ping", "-n", "-q", "-c1", "-W1", str(t)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL) for t in targets}
    except OSError as exc:
        raise KitError(f"cannot run ping (iputils-ping): {exc}") from exc
    silent = []
    for target, proc in procs.items():
        try:
            ok = proc.wait(timeout=deadline.left()) == 0
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            ok = False
        if not ok:
            silent.append(target)
    return silent
