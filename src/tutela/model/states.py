"""Resource states as LifeKeeper administrators know them.

ISP/ISU are in service, OSU/OSF out of service, UNKNOWN while undetermined.
"""

from enum import StrEnum


class ResourceState(StrEnum):
    ISP = "ISP"  # in service, protected
    ISU = "ISU"  # in service, unprotected (local checks or recovery off)
    OSU = "OSU"  # out of service, unimpaired
    OSF = "OSF"  # out of service, failed
    UNKNOWN = "UNKNOWN"

    @property
    def in_service(self) -> bool:
        # A module constant: ResourceState.ISP goes through the enum's metaclass, three
        # times slower (asked for every resource by every heartbeat and ownership tick).
        return self in _IN_SERVICE


_IN_SERVICE = frozenset({ResourceState.ISP, ResourceState.ISU})
