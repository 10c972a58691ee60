"""vecmig's neutral filter (Qdrant's filter JSON) as a Weaviate filter, for the common subset.

Translated:
  {"must": [...], "should": [...], "must_not": [...]}   all of / at least one of / none of
                                                        (a single condition instead of a list, and
                                                        nested filters as conditions, too)
  {"key": K, "match": {"value": V}}                     K equals V
  {"key": K, "match": {"any": [V, ...]}}                K is one of the values
  {"key": K, "match": {"except": [V, ...]}}             K is none of the values
  {"key": K, "range": {"gt"|"gte"|"lt"|"lte": X}}       numbers, or RFC 3339 dates as text
  {"has_id": [id, ...]}                                 ids (integers or UUIDs, as everywhere)

Anything else (``min_should``, nested keys like ``a.b``, ``is_empty``, ``is_null``, ``has_vector``,
text and geo conditions, ...) is refused with its name, never dropped. On text properties Weaviate
compares by the property's tokenization: ``match: {value: ...}`` on a ``word``-tokenized text
matches a word, not the whole text (declare such fields with ``field`` tokenization).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from vecmig.backends.weaviate_points import to_uuid
from vecmig.backends.weaviate_schema import invalid_property_name

CLAUSES = ("must", "should", "must_not")
RANGE_KEYS = {"gt": "greater_than", "gte": "greater_or_equal", "lt": "less_than", "lte": "less_or_equal"}


class FilterError(ValueError):
    """The filter is malformed, or uses a part Weaviate can't express."""


def weaviate_filter(Filter, spec: dict | None, where: str = "filter") -> Any:
    """The client's filter object for ``spec`` (None for no filter). ``Filter`` is
    ``weaviate.classes.query.Filter``, passed in so that this module imports no client."""
    if not spec:
        return None
    return _clauses(Filter, spec, where)


def _clauses(Filter, spec: Any, where: str) -> Any:
    if not isinstance(spec, dict):
        raise FilterError(f"{where}: a filter is a mapping of must / should / must_not, not {type(spec).__name__}")
    unknown = sorted(set(spec) - set(CLAUSES))
    if unknown:
        hint = " (Weaviate has no 'at least N of')" if "min_should" in unknown else ""
        raise FilterError(f"{where}: {unknown[0]!r} can't be translated for Weaviate{hint}: use must, should and must_not")
    parts = []
    for clause in CLAUSES:
        items = spec.get(clause)
        if items is None:
            continue
        items = items if isinstance(items, list) else [items]
        conditions = [_condition(Filter, c, f"{where}.{clause}[{i}]") for i, c in enumerate(items)]
        if not conditions:
            continue
        if clause == "must":
            parts.extend(conditions)
        elif clause == "should":
            parts.append(_combine(Filter.any_of, conditions))
        else:
            parts.append(Filter.not_(_combine(Filter.any_of, conditions)))
    if not parts:
        raise FilterError(f"{where}: the filter has no conditions")
    return _combine(Filter.all_of, parts)


def _combine(join, conditions: list) -> Any:
    return conditions[0] if len(conditions) == 1 else join(conditions)


def _condition(Filter, cond: Any, where: str) -> Any:
    if not isinstance(cond, dict):
        raise FilterError(f"{where}: a condition is a mapping like {{key: field, match: {{value: x}}}}, not {cond!r}")
    if set(cond) & set(CLAUSES):
        return _clauses(Filter, cond, where)
    if "has_id" in cond:
        ids = cond["has_id"]
        if set(cond) != {"has_id"} or not isinstance(ids, list) or not ids:
            raise FilterError(f"{where}: has_id takes a non-empty list of ids")
        try:
            return Filter.by_id().contains_any([to_uuid(i) for i in ids])
        except Exception as e:
            raise FilterError(f"{where}: has_id: {e}") from None
    key = cond.get("key")
    if key is None:
        kind = next(iter(cond), "?")
        raise FilterError(f"{where}: the condition {kind!r} can't be translated for Weaviate: use key with match or range, or has_id")
    if not isinstance(key, str) or "." in key or "[" in key:
        raise FilterError(f"{where}: key {key!r}: Weaviate filters only top-level properties, not nested paths")
    problem = invalid_property_name(key)
    if problem:
        raise FilterError(f"{where}: key {key!r}: {problem}")
    extra = sorted(set(cond) - {"key", "match", "range"})
    if extra or ("match" in cond) == ("range" in cond):
        what = f"{extra[0]!r}" if extra else "exactly one of match and range"
        raise FilterError(f"{where}: key {key!r}: {what} can't be translated for Weaviate: give match (value, any or except) or range")
    prop = Filter.by_property(key)
    if "match" in cond:
        return _match(prop, cond["match"], f"{where}.match")
    return _range(Filter, key, cond["range"], f"{where}.range")


def _match(prop, match: Any, where: str) -> Any:
    if not isinstance(match, dict) or len(match) != 1:
        raise FilterError(f"{where}: give one of value, any, except")
    (kind, value), = match.items()
    if kind == "value":
        if not isinstance(value, (str, int, bool)):
            raise FilterError(f"{where}.value: {value!r} is not text, an integer or a boolean")
        return prop.equal(value)
    if kind in ("any", "except"):
        if not isinstance(value, list) or not value or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
            raise FilterError(f"{where}.{kind}: a non-empty list of texts or integers")
        return prop.contains_any(value) if kind == "any" else prop.contains_none(value)
    raise FilterError(f"{where}: match {kind!r} can't be translated for Weaviate: use value, any or except")


def _range(Filter, key: str, bounds: Any, where: str) -> Any:
    if not isinstance(bounds, dict) or not bounds:
        raise FilterError(f"{where}: give gt, gte, lt or lte")
    unknown = sorted(set(bounds) - set(RANGE_KEYS))
    if unknown:
        raise FilterError(f"{where}: {unknown[0]!r} is not one of gt, gte, lt, lte")
    conditions = []
    for bound, value in bounds.items():
        if value is None:
            continue
        prop = Filter.by_property(key)
        conditions.append(getattr(prop, RANGE_KEYS[bound])(_range_value(value, f"{where}.{bound}")))
    if not conditions:
        raise FilterError(f"{where}: all bounds are null")
    return _combine(Filter.all_of, conditions)


def _range_value(value: Any, where: str) -> Any:
    if isinstance(value, bool):
        raise FilterError(f"{where}: {value!r} is not a number or a date")
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise FilterError(f"{where}: {value!r} is neither a number nor an RFC 3339 date") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
    raise FilterError(f"{where}: {value!r} is not a number or a date")
