"""The ip recovery kit: virtual IPv4 addresses with duplicate detection and gratuitous ARP.

`IpKit` lives in `kit`; the raw-socket ARP code it uses lives in `arp`.
"""

from tutela.kits.ip.kit import IpKit, IpParams

__all__ = ["IpKit", "IpParams"]
