"""JSON Schemas of Placement request bodies and query strings, per microversion.

Each schema is closed where Placement's is (an unknown key is a 400), and the
schema for a microversion is the one before it plus what that microversion
added. :func:`validate` checks a document with ``jsonschema`` (validators are
built once per schema) and turns the first failure into a 400 in Placement's
error format.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from typing import Any

import jsonschema
import jsonschema.exceptions
import jsonschema.protocols
import jsonschema.validators

from nimbus.core.api.placement.errors import PlacementError

#: The largest integer an inventory field may hold (a signed 32-bit column).
MAX_INT = 2147483647
#: The largest allocation ratio (a single-precision float column).
MAX_FLOAT = 3.40282e38

RC_PATTERN = "^[A-Z0-9_]+$"
CUSTOM_PATTERN = "^CUSTOM_[A-Z0-9_]+$"
#: A provider or consumer uuid as an object key (checked loosely, as Placement does).
UUID_KEY = "^[0-9a-fA-F-]{36}$"
#: Request group suffixes of granular requests (microversions 1.25 to 1.32).
GROUP_SUFFIX = "[1-9][0-9]*"

Schema = dict[str, Any]


def is_uuid_like(value: object) -> bool:
    """Whether ``value`` is a UUID string, with or without dashes, in any case."""
    if not isinstance(value, str):
        return False
    try:
        return uuid.UUID(value).hex == value.replace("-", "").lower()
    except ValueError:
        return False


_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("uuid")(is_uuid_like)


def closed(properties: Mapping[str, Schema], *required: str, **extra: Any) -> Schema:
    """An object schema with these properties and no others."""
    schema: Schema = {"type": "object", "properties": dict(properties),
                      "additionalProperties": False, **extra}
    if required:
        schema["required"] = list(required)
    return schema


def extended(base: Schema, properties: Mapping[str, Schema] | None = None, *,
             require: tuple[str, ...] = (), drop: tuple[str, ...] = ()) -> Schema:
    """A copy of object schema ``base`` with more (or fewer) properties and required keys."""
    schema = copy.deepcopy(base)
    for name in drop:
        schema["properties"].pop(name, None)
        if name in schema.get("required", []):
            schema["required"].remove(name)
    schema["properties"].update(copy.deepcopy(dict(properties or {})))
    if require:
        schema["required"] = [*schema.get("required", []), *require]
    return schema


def _int(low: int, high: int = MAX_INT) -> Schema:
    return {"type": "integer", "minimum": low, "maximum": high}


STRING: Schema = {"type": "string"}
UUID: Schema = {"type": "string", "format": "uuid"}
NULLABLE_UUID: Schema = {"anyOf": [UUID, {"type": "null"}]}
GENERATION: Schema = {"type": "integer"}
EXTERNAL_ID: Schema = {"type": "string", "minLength": 1, "maxLength": 255}

# -- resource providers --------------------------------------------------------------

PROVIDER_POST = closed({"name": {"type": "string", "maxLength": 200}, "uuid": UUID}, "name")
PROVIDER_POST_1_14 = extended(PROVIDER_POST, {"parent_provider_uuid": NULLABLE_UUID})
PROVIDER_PUT = extended(PROVIDER_POST, drop=("uuid",))
PROVIDER_PUT_1_14 = extended(PROVIDER_POST_1_14, drop=("uuid",))

PROVIDERS_QUERY = closed({"name": STRING, "uuid": UUID})
PROVIDERS_QUERY_1_3 = extended(PROVIDERS_QUERY, {"member_of": STRING})
PROVIDERS_QUERY_1_4 = extended(PROVIDERS_QUERY_1_3, {"resources": STRING})
PROVIDERS_QUERY_1_14 = extended(PROVIDERS_QUERY_1_4, {"in_tree": UUID})
PROVIDERS_QUERY_1_18 = extended(PROVIDERS_QUERY_1_14, {"required": STRING})

# -- inventories ---------------------------------------------------------------------

_INVENTORY_FIELDS: dict[str, Schema] = {
    "total": _int(1),
    "reserved": _int(0),
    "min_unit": _int(1),
    "max_unit": _int(1),
    "step_size": _int(1),
    "allocation_ratio": {"type": "number", "maximum": MAX_FLOAT},
}
INVENTORY_PUT = closed({"resource_provider_generation": GENERATION, **_INVENTORY_FIELDS},
                       "total", "resource_provider_generation")
INVENTORY_POST = extended(INVENTORY_PUT, {"resource_class": {"type": "string",
                                                           "pattern": RC_PATTERN}},
                          require=("resource_class",))
INVENTORY_POST["required"].remove("resource_provider_generation")
_INVENTORY_RECORD = closed({"resource_provider_generation": GENERATION, **_INVENTORY_FIELDS},
                           "total")
INVENTORIES_PUT = closed({
    "resource_provider_generation": GENERATION,
    "inventories": {"type": "object", "patternProperties": {RC_PATTERN: _INVENTORY_RECORD}},
}, "resource_provider_generation", "inventories")

# -- aggregates and traits -----------------------------------------------------------

AGGREGATES_PUT = {"type": "array", "items": UUID, "uniqueItems": True}
AGGREGATES_PUT_1_19 = closed({"aggregates": AGGREGATES_PUT,
                              "resource_provider_generation": GENERATION},
                             "aggregates", "resource_provider_generation")

TRAIT_NAME: Schema = {"type": "string", "minLength": 1, "maxLength": 255}
CUSTOM_TRAIT: Schema = {**TRAIT_NAME, "pattern": CUSTOM_PATTERN}
PROVIDER_TRAITS_PUT = closed({"traits": {"type": "array", "items": TRAIT_NAME},
                              "resource_provider_generation": GENERATION},
                             "traits", "resource_provider_generation")
TRAITS_QUERY = closed({"name": STRING, "associated": STRING})

# -- resource classes ----------------------------------------------------------------

RESOURCE_CLASS = closed({"name": {"type": "string", "pattern": CUSTOM_PATTERN,
                                  "maxLength": 255}}, "name")

# -- allocations ---------------------------------------------------------------------

_AMOUNTS: Schema = {"type": "object", "minProperties": 1,
                    "patternProperties": {RC_PATTERN: {"type": "integer", "minimum": 1}},
                    "additionalProperties": False}

ALLOCATIONS_PUT = closed({"allocations": {
    "type": "array", "minItems": 1,
    "items": closed({"resource_provider": closed({"uuid": UUID}, "uuid"),
                     "resources": _AMOUNTS}, "resource_provider", "resources"),
}}, "allocations")
ALLOCATIONS_PUT_1_8 = extended(ALLOCATIONS_PUT, {"project_id": EXTERNAL_ID, "user_id": EXTERNAL_ID},
                               require=("project_id", "user_id"))
ALLOCATIONS_PUT_1_12 = closed({
    "allocations": {
        "type": "object", "minProperties": 1,
        "patternProperties": {UUID_KEY: closed({"generation": GENERATION,
                                                "resources": _AMOUNTS}, "resources")},
        "additionalProperties": False,
    },
    "project_id": EXTERNAL_ID,
    "user_id": EXTERNAL_ID,
}, "allocations", "project_id", "user_id")
#: One consumer's part of ``POST /allocations``: an empty dict releases everything.
RELEASABLE = copy.deepcopy(ALLOCATIONS_PUT_1_12)
RELEASABLE["properties"]["allocations"]["minProperties"] = 0
ALLOCATIONS_PUT_1_28 = extended(RELEASABLE, {"consumer_generation": {"type": ["integer", "null"]}},
                                require=("consumer_generation",))
ALLOCATIONS_POST = {"type": "object", "minProperties": 1,
                    "patternProperties": {UUID_KEY: RELEASABLE}, "additionalProperties": False}
ALLOCATIONS_POST_1_28 = {**ALLOCATIONS_POST, "patternProperties": {UUID_KEY: ALLOCATIONS_PUT_1_28}}

USAGES_QUERY = closed({"project_id": EXTERNAL_ID, "user_id": EXTERNAL_ID}, "project_id")

# -- allocation candidates -----------------------------------------------------------

CANDIDATES_QUERY = closed({"resources": STRING}, "resources")
CANDIDATES_QUERY_1_16 = extended(CANDIDATES_QUERY,
                                 {"limit": {"type": "string", "pattern": "^[1-9][0-9]*$"}})
CANDIDATES_QUERY_1_17 = extended(CANDIDATES_QUERY_1_16, {"required": STRING})
CANDIDATES_QUERY_1_21 = extended(CANDIDATES_QUERY_1_17, {"member_of": STRING})
CANDIDATES_QUERY_1_25 = closed(
    {"limit": CANDIDATES_QUERY_1_16["properties"]["limit"],
     "group_policy": {"type": "string", "enum": ["none", "isolate"]}},
    patternProperties={f"^{key}({GROUP_SUFFIX})?$": STRING
                       for key in ("resources", "required", "member_of")})


# -- validation ----------------------------------------------------------------------

#: Validators built so far, by the id of their schema (which they keep alive).
_VALIDATORS: dict[int, tuple[Schema, jsonschema.protocols.Validator]] = {}


def _validator(schema: Schema) -> jsonschema.protocols.Validator:
    known = _VALIDATORS.get(id(schema))
    if known is not None and known[0] is schema:
        return known[1]
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    validator: jsonschema.protocols.Validator = cls(schema, format_checker=_FORMATS)
    _VALIDATORS[id(schema)] = (schema, validator)
    return validator


def validate(document: Any, schema: Schema, what: str = "JSON does not validate") -> None:
    """Check ``document`` against ``schema``; a 400 naming the first problem otherwise."""
    error = jsonschema.exceptions.best_match(_validator(schema).iter_errors(document))
    if error is None:
        return
    where = "/".join(str(p) for p in error.absolute_path)
    suffix = f" (at {where})" if where else ""
    raise PlacementError(400, f"{what}: {error.message}{suffix}")
