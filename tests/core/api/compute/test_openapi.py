"""``GET /v2.1/openapi.json``: a valid OpenAPI 3.1 document naming every served route."""

from __future__ import annotations

from typing import Any
from unittest.mock import MagicMock

from openapi_spec_validator import validate

from nimbus.core.api.compute import openapi
from nimbus.core.api.compute.routes import compute_routes
from tests.core.api.compute.harness import Api, run


def _served() -> tuple[Any, ...]:
    # building routes reads nothing from the env: a stand-in is enough
    return compute_routes(MagicMock())


def test_the_document_is_served_without_a_token_and_validates() -> None:
    async def scenario(api: Api) -> Any:
        return await api.get("/openapi.json", token="")

    got = run(scenario)
    assert got.status == 200
    validate(got.body)
    assert got.body["openapi"] == "3.1.0"
    assert got.body["servers"] == [{"url": "http://nimbus.test:8774"}]


def test_every_served_route_is_in_the_document_once() -> None:
    doc = openapi.document(_served())
    validate(doc)
    expected = {(r.method.lower(), r.path) for r in _served()
                if not r.path.startswith("/v2.1/{project_id}")}
    found = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert found == expected
    assert not any("{project_id}" in p for p in doc["paths"])
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def test_every_body_taking_route_names_its_body_and_path_parameters() -> None:
    doc = openapi.document(_served())
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            named = {p["name"] for p in op["parameters"] if p.get("in") == "path"}
            assert named == set(openapi._PARAM.findall(path)), (method, path)
            if method in ("post", "put") and path != openapi.PATH:
                assert "requestBody" in op, (method, path)


def test_the_bodies_are_the_schemas_the_modules_validate_with() -> None:
    doc = openapi.document(_served())
    create = doc["paths"]["/v2.1/servers"]["post"]["requestBody"]
    schema = create["content"]["application/json"]["schema"]
    assert schema["required"] == ["server"]
    assert "flavorRef" in schema["properties"]["server"]["properties"]
    flavor = doc["paths"]["/v2.1/flavors"]["post"]["requestBody"]["content"]
    # Draft 4's boolean exclusiveMinimum becomes 2020-12's number
    rxtx = flavor["application/json"]["schema"]["properties"]["flavor"]["properties"][
        "rxtx_factor"]
    assert rxtx["exclusiveMinimum"] == 0 and "minimum" not in rxtx


def test_open_routes_need_no_token_and_the_rest_do() -> None:
    doc = openapi.document(_served())
    assert doc["paths"]["/v2.1"]["get"]["security"] == []
    assert "security" not in doc["paths"]["/v2.1/servers"]["get"]
    assert doc["security"] == [{"token": []}]
    scheme = doc["components"]["securitySchemes"]["token"]
    assert (scheme["in"], scheme["name"]) == ("header", "X-Auth-Token")
    versions = doc["components"]["parameters"]["version"]["schema"]["enum"]
    assert "compute 2.1" in versions and "compute latest" in versions


def test_dialect_turns_draft4_keywords_into_2020_12() -> None:
    assert openapi.dialect({"minimum": 0, "exclusiveMinimum": True}) == {"exclusiveMinimum": 0}
    assert openapi.dialect({"minimum": 0, "exclusiveMinimum": False}) == {"minimum": 0}
    assert openapi.dialect({"items": [{"type": "string"}], "additionalItems": False}) == {
        "prefixItems": [{"type": "string"}], "items": False}


def test_query_parameters_are_named_for_served_routes() -> None:
    served = {(r.method, r.path) for r in _served()}
    assert set(openapi.query_parameters()) <= served
    doc = openapi.document(_served())
    servers = doc["paths"]["/v2.1/servers/detail"]["get"]["parameters"]
    queried = {p["name"]: p["schema"] for p in servers if p.get("in") == "query"}
    assert {"limit", "marker", "changes-since", "name"} <= set(queried)
    assert queried["limit"]["type"] == ["integer", "string"]
