"""This host's IPv4 addresses with their prefixes, read over netlink.

What `tutela init` and `tutela join` offer as the node's cluster networks by default.
"""

from __future__ import annotations


def global_ipv4_interfaces() -> list[str]:
    """Every global-scope IPv4 address of this host (network namespace), as 'a.b.c.d/p'."""
    from pyroute2 import IPRoute  # loaded only by the commands that need it

    with IPRoute() as ipr:
        return [f"{msg.get('IFA_ADDRESS')}/{msg['prefixlen']}"
                for msg in ipr.get_addr(family=2) if msg["scope"] == 0]
