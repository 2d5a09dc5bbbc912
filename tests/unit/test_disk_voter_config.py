"""The disk voter in the configuration: the model's own checks (each naming the fix), the
checks against the rest of the configuration, and its place among the lease voters."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tutela.lcd.document import from_yaml, to_yaml
from tutela.lcd.validate import validate_config
from tutela.lcm.paths import voters_of
from tutela.model.config import ClusterConfig, DiskVoter
from tutela.model.errors import ConfigError

ID = "9f2c0123456789abcdef0123456789ab"


def disk(**fields: Any) -> dict[str, Any]:
    return {"device": "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4", "id": ID,
            "slots": ["node1", "node2"], **fields}


def cluster(**fields: Any) -> ClusterConfig:
    return ClusterConfig.model_validate({
        "name": "prod", "nodes": [{"name": "node1"}, {"name": "node2"}], **fields})


@pytest.mark.parametrize(("fields", "message"), [
    ({"offset": 512}, "offset 512 is not a multiple of 4096; round it down to 0"),
    ({"slots": ["node1", "node1"]}, "a node has two slots"),
    ({"devices": {"node3": "/dev/sdc"}}, "devices names node3, which has no slot"),
    ({"device": None, "devices": {"node1": "/dev/sdc"}}, "no device for node2"),
    ({"id": "xyz"}, "should match pattern"),
    ({"sector_size": 1024}, "Input should be 512 or 4096"),
    ({"io_limit": 0}, "greater than 0"),
])
def test_the_model_refuses_with_the_fix(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DiskVoter.model_validate(disk(**fields))


def test_each_node_opens_its_own_path_or_the_common_one() -> None:
    voter = DiskVoter.model_validate(disk(devices={"node2": "/dev/sdc"}))
    assert voter.device_of("node1") == "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
    assert voter.device_of("node2") == "/dev/sdc"
    assert voter.voter_id == "disk@9f2c0123"


def test_the_disk_is_the_third_voter_of_two_nodes() -> None:
    assert voters_of(cluster(disk_voter=disk())) == ("node1", "node2", "disk@9f2c0123")
    assert voters_of(cluster()) == ("node1", "node2")


def test_it_survives_export_and_apply() -> None:
    config = cluster(disk_voter=disk(devices={"node2": "/dev/sdc"}, io_limit=8))
    assert from_yaml(to_yaml(config)) == config


def test_quorum_none_makes_the_disk_pointless() -> None:
    with pytest.raises(ConfigError) as error:
        validate_config(cluster(disk_voter=disk(), settings={"quorum": "none"}))
    [problem] = error.value.problems
    assert problem.field == "disk_voter" and "settings.quorum" in problem.fix


def test_every_lease_name_must_fit_one_slot() -> None:
    """A node may hold every clustered hierarchy and the configuration lease at once."""
    roots = [f"hierarchy-with-a-long-root-tag-{i:02d}" for i in range(14)]
    document = {
        "resources": [{"tag": root, "kit": "generic", "params": {"restore": "/bin/true",
                       "remove": "/bin/true", "quick_check": "/bin/true"}} for root in roots],
        "hierarchies": [{"root": root, "equivalencies": [{"node": "node1", "priority": 1}]}
                        for root in roots]}
    validate_config(cluster(disk_voter=disk(sector_size=4096), **document))
    with pytest.raises(ConfigError) as error:
        validate_config(cluster(disk_voter=disk(), **document))
    [problem] = error.value.problems
    assert problem.field == "disk_voter.sector_size"
    assert "more than 512" in problem.message and "--sector-size 4096" in problem.fix
