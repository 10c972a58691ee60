"""Data files that ops read from next to their revision."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from vecmig.errors import ScriptError


def iter_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line of a JSON Lines file."""
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise ScriptError(f"{path}:{lineno}: not valid JSON: {e.msg}") from None
