"""What every Compute API request goes through: discovery, tokens, microversions, errors."""

from __future__ import annotations

from nimbus.core.api.compute.microversion import MAX_VERSION
from tests.core.api.compute.harness import Api, run


def test_discovery_needs_no_token_and_names_the_range() -> None:
    async def scenario(api: Api) -> None:
        got = await api.get("", token="")
        assert got.status == 200
        assert got.body["version"]["min_version"] == "2.1"
        assert got.body["version"]["version"] == str(MAX_VERSION)
        assert got.body["version"]["links"][0]["href"] == "http://nimbus.test:8774/v2.1/"

    run(scenario)


def test_an_unknown_path_is_a_nova_style_404() -> None:
    async def scenario(api: Api) -> None:
        got = await api.get("/no-such-thing/at-all/here")
        assert got.status == 404 and "itemNotFound" in got.body

    run(scenario)
