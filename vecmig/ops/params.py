"""Checking an op's parameters against its JSON Schema, with one clear line per problem."""

from __future__ import annotations

from typing import Any

from vecmig.errors import ScriptError


def _path(error) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)


def check_params(op_name: str, params: dict[str, Any], where: str) -> None:
    import jsonschema

    from vecmig.ops.base import param_schemas

    schemas = param_schemas()
    schema = {"$defs": schemas["$defs"], "$ref": f"#/$defs/{op_name}"}
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(params), key=lambda e: (len(list(e.absolute_path)), e.message))
    if errors:
        e = errors[0]
        loc = f"{op_name}{_path(e)}"
        if e.validator in ("oneOf", "anyOf") and all(set(sub) == {"required"} for sub in e.validator_value):
            keys = " or ".join(f"`{sub['required'][0]}`" for sub in e.validator_value)
            exactly = "exactly one of " if e.validator == "oneOf" else ""
            raise ScriptError(f"{where}: {loc}: give {exactly}{keys}")
        if e.validator in ("oneOf", "anyOf") and e.schema.get("description"):
            raise ScriptError(f"{where}: {loc}: {e.instance!r} is not allowed: {e.schema['description']}")
        if e.validator == "additionalProperties":
            allowed = sorted(e.schema.get("properties", {}))
            raise ScriptError(f"{where}: {loc}: {e.message}; allowed: {', '.join(allowed)}")
        raise ScriptError(f"{where}: {loc}: {e.message}")
