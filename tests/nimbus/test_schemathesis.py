"""Schemathesis over the Compute API's own OpenAPI document: no request gives a 500.

One ``nimbus serve`` (every port 0, a fresh ``XDG_DATA_HOME``) serves
``/v2.1/openapi.json``; schemathesis loads it and generates requests for every
operation from the document's schemas (bodies, path and query parameters, the
microversion header), sent with a real admin token: first with generated path
parameters (mostly naming nothing), then with the ids of a real flavor,
aggregate and ACTIVE server, so that handlers get past their lookups. The run is
bounded (examples per operation, a wall-clock budget) and derandomized. A 5xx
answer to any request fails the test, listing what was sent.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error

from .test_all_in_one import Cloud, compute, http, issue_token, start_cloud

#: Requests generated per operation and per round (free path parameters, real ids).
EXAMPLES = 12
#: Wall-clock budget of the generation: operations left when it is spent get one example.
BUDGET = 75.0


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[Cloud]:
    running = start_cloud(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def _seed(catalog: dict[str, str], token: str) -> dict[str, str]:
    """A flavor, an aggregate and an ACTIVE server: path parameters naming real things."""
    api, version = catalog["compute"], compute("2.61")
    flavor = http("POST", f"{api}/flavors", {"flavor": {
        "name": "st.tiny", "ram": 256, "vcpus": 1, "disk": 1}}, token=token, headers=version)
    assert flavor.status == 200, flavor.body
    image = http("POST", f"{catalog['image']}/v2/images", {
        "name": "st-img", "container_format": "bare", "disk_format": "raw"}, token=token)
    assert image.status == 201, image.body
    upload = http("PUT", f"{catalog['image']}/v2/images/{image.body['id']}/file",
                  os.urandom(4096), token=token)
    assert upload.status == 204
    aggregate = http("POST", f"{api}/os-aggregates", {"aggregate": {"name": "st-agg"}},
                     token=token)
    assert aggregate.status == 200, aggregate.body
    booted = http("POST", f"{api}/servers", {"server": {
        "name": "st-vm", "imageRef": image.body["id"], "flavorRef": flavor.body["flavor"]["id"],
        "networks": "auto"}}, token=token, headers=version)
    assert booted.status == 202, booted.body
    server_id = booted.body["server"]["id"]
    end = time.monotonic() + 30
    while http("GET", f"{api}/servers/{server_id}", token=token).body["server"][
            "status"] != "ACTIVE":
        assert time.monotonic() < end, "the seeded server never became ACTIVE"
        time.sleep(0.2)
    return {"flavor_id": flavor.body["flavor"]["id"], "server_id": server_id,
            "aggregate_id": str(aggregate.body["aggregate"]["id"]), "key": "st-key"}


def _fuzz(operation: Any, fixed: dict[str, str], base: str, auth: dict[str, str],
          examples: int, errors: list[str]) -> int:
    """Send ``examples`` generated requests to one operation; 5xx answers go to ``errors``."""
    sent = 0

    @given(case=operation.as_strategy(path_parameters=fixed or None))
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    def run(case: Any) -> None:
        nonlocal sent
        sent += 1
        response = case.call(base_url=base, headers=auth, timeout=30)
        try:
            case.validate_response(response, checks=[not_a_server_error])
        except (AssertionError, BaseExceptionGroup):  # schemathesis' Failure(Group)
            errors.append(f"{case.method} {case.path} {case.path_parameters} "
                          f"headers={case.headers} query={case.query} body={case.body!r} "
                          f"-> {response.status_code} {response.text[:200]}")

    run()
    return sent


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_no_generated_request_is_a_server_error(cloud: Cloud) -> None:
    issued = issue_token(cloud.identity_url, cloud.admin_password)
    assert issued.status == 201, issued.body
    token = issued.headers["x-subject-token"]
    catalog = {svc["type"]: svc["endpoints"][0]["url"] for svc in issued.body["token"]["catalog"]}
    real = _seed(catalog, token)
    base = catalog["compute"].removesuffix("/v2.1")
    schema = schemathesis.openapi.from_url(f"{catalog['compute']}/openapi.json")
    auth = {"X-Auth-Token": token}

    end = time.monotonic() + BUDGET
    errors: list[str] = []
    operations = sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        examples = EXAMPLES if time.monotonic() < end else 1
        sent += _fuzz(operation, {}, base, auth, examples, errors)
        names = re.findall(r"{(\w+)}", operation.path)
        if names and set(names) <= set(real):
            fixed = {name: real[name] for name in names}
            sent += _fuzz(operation, fixed, base, auth, examples, errors)
    print(f"schemathesis: {operations} operations, {sent} requests, {len(errors)} 5xx")
    assert operations >= 70
    assert not errors, "\n".join(errors)
