"""Checks of the disk voter's settings against the rest of the configuration (the model
checks the settings on their own; the device is checked by `tutela disk init` and by
tutelad on each node)."""

from __future__ import annotations

from tutela.arbiter.disk_voter import slot_bytes
from tutela.arbiter.messages import CONFIG_LEASE
from tutela.model.config import ClusterConfig
from tutela.model.errors import Problem


def disk_voter_problems(config: ClusterConfig) -> list[Problem]:
    disk = config.disk_voter
    if disk is None:
        return []
    problems = []
    if config.settings.quorum == "none":
        problems.append(Problem("disk_voter", "quorum 'none' counts no voter but the node "
                                "itself, so the disk voter would change nothing",
                                "set settings.quorum to 'majority' (the disk is then the "
                                "third vote of two nodes), or remove disk_voter"))
    names = [CONFIG_LEASE, *(h.root for h in config.hierarchies if h.clustered)]
    needed = slot_bytes(names)
    if needed > disk.sector_size:
        fix = ("set disk_voter.sector_size to 4096 ('tutela disk remove', then 'tutela disk "
               "init DEVICE --sector-size 4096')" if disk.sector_size < 4096
               else "use shorter hierarchy root tags")
        problems.append(Problem("disk_voter.sector_size", f"a node holding all {len(names)} "
                                f"leases (the clustered hierarchies and the configuration's) "
                                f"writes {needed} bytes to its slot, more than "
                                f"{disk.sector_size}", fix))
    return problems
