"""Where a node serves the API (tutela.daemon.api_process.endpoint): off until enabled,
nodes[].api_address first, else settings.api on every address."""

from __future__ import annotations

import pytest

from tutela.daemon.api_process import endpoint
from tutela.model.config import ClusterConfig


def config(api: dict[str, object], address: str | None) -> ClusterConfig:
    node: dict[str, object] = {"name": "n1"}
    if address is not None:
        node["api_address"] = address
    return ClusterConfig.model_validate({"name": "c", "settings": {"api": api},
                                         "nodes": [node, {"name": "n2"}]})


@pytest.mark.parametrize(("api", "address", "expected"), [
    ({}, None, None),
    ({"enabled": True}, None, ("0.0.0.0", 9443)),
    ({"enabled": True, "port": 8443}, None, ("0.0.0.0", 8443)),
    ({}, "198.51.100.11", ("198.51.100.11", 9443)),
    ({"enabled": True, "port": 8443}, "198.51.100.11:10443", ("198.51.100.11", 10443)),
])
def test_endpoint(api: dict[str, object], address: str | None,
                  expected: tuple[str, int] | None) -> None:
    assert endpoint(config(api, address), "n1") == expected


def test_only_the_node_with_an_address_serves_it() -> None:
    assert endpoint(config({}, "198.51.100.11"), "n2") is None


def test_a_bad_address_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"api_address[\s\S]*198.51.100.11:9443"):
        config({}, "198.51.100.300")
