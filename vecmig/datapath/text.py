"""The text rule: what text a point's vector is embedded from, and the hash that says so.

A backfill renders ``text`` (a jinja2 template over the payload, sandboxed, strict) for each point,
embeds it, and stores the sha256 (hex) of that exact text next to the vector, in the payload field
``text_hash_field(vector)`` = ``_vecmig_text_hash_<vector>`` (``_vecmig_text_hash`` for the unnamed
vector) — keyed by vector name, the same rule in a new collection and in place, so one collection
can hold vectors of several backfills and a copy keeps each hash next to its vector. Reconcile,
verify and the application Router render and hash by this same rule.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

from vecmig.errors import PlanError, ScriptError
from vecmig.schema import Point

TEXT_HASH_FIELD = "_vecmig_text_hash"


def text_hash_field(vector: str) -> str:
    """The payload field holding the hash of the text embedded into ``vector``."""
    return f"{TEXT_HASH_FIELD}_{vector}" if vector else TEXT_HASH_FIELD


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class TemplateError(ScriptError):
    """A backfill's text template doesn't fit a point's payload (a field is missing, ...)."""


class TextTemplate:
    """A jinja2 template over a point's payload, rendered in a sandbox with strict undefined.

    A field the template uses and the payload lacks is an error naming the point and the field;
    null values count as missing (Weaviate doesn't store nulls: the same template behaves the same
    on every store). Optional fields: ``{{ description | default('') }}``.
    """

    def __init__(self, source: str):
        from jinja2 import StrictUndefined, TemplateSyntaxError
        from jinja2.sandbox import SandboxedEnvironment

        self.source = source
        env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
        try:
            self._template = env.from_string(source)
        except TemplateSyntaxError as e:
            raise TemplateError(f"text template {source!r}: line {e.lineno}: {e.message}") from None

    def render(self, point: Point) -> str:
        from jinja2 import UndefinedError
        from jinja2.exceptions import SecurityError

        fields = {k: v for k, v in point.payload.items() if v is not None}
        try:
            return self._template.render(fields)
        except UndefinedError as e:
            name = undefined_name(str(e))
            have = ", ".join(sorted(fields)) or "no fields"
            raise TemplateError(
                f"point {point.id!r}: the text template uses {name!r}, which the point's payload doesn't have "
                f"(it has {have}): fix the data, or write {{{{ {name} | default('') }}}} for an optional field"
            ) from None
        except SecurityError as e:
            raise TemplateError(f"point {point.id!r}: the text template did something the sandbox forbids: {e}") from None
        except Exception as e:
            raise TemplateError(f"point {point.id!r}: rendering the text template failed: {type(e).__name__}: {e}") from None


def undefined_name(message: str) -> str:
    """The missing name in jinja2's "'x' is undefined" / "... has no attribute 'x'" messages."""
    m = re.search(r"has no attribute '([^']+)'", message) or re.search(r"'([^']+)' is undefined", message)
    return m.group(1) if m else message


@lru_cache(maxsize=64)
def template_for(source: str) -> TextTemplate:
    """The compiled template of ``source``, once per process (jobs carry the source text only)."""
    return TextTemplate(source)


def parse_template(source: str | None, what: str) -> TextTemplate | None:
    """A TextTemplate, or None; a template jinja2 can't parse is a PlanError."""
    if not source:
        return None
    try:
        return TextTemplate(source)
    except TemplateError as e:
        raise PlanError(f"{what}: {e}") from None
