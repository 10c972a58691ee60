"""``provider = python``: any function, for models and services vecmig has no provider for.

``callable = package.module:function`` names ``function(texts: list[str], kind: str) -> vectors``
where kind is ``"document"`` or ``"query"`` and vectors is an (n, dim) array or list of lists.
A module next to vecmig.ini is found without installing it. ``model`` (default: the callable's
name) is what the fingerprint records.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable

from vecmig.embed.base import Embedder, Settings


class PythonEmbedder(Embedder):
    provider = "python"

    def default_model(self) -> str | None:
        return self.settings.values.get("callable") or None

    def configure(self, settings: Settings) -> None:
        self.target = settings.str("callable", required=True)
        module, sep, attr = self.target.partition(":")
        if not sep or not module or not attr:
            raise settings.error("callable", f"{self.target!r} is not `module:function`")
        self._function: Callable[[list[str], str], Any] | None = None

    def load(self) -> Callable[[list[str], str], Any]:
        if self._function is None:
            module_name, _, attr = self.target.partition(":")
            module = self._import(module_name)
            obj: Any = module
            for part in attr.split("."):
                obj = getattr(obj, part, None)
                if obj is None:
                    raise self.settings.error("callable", f"module {module_name!r} has no {attr!r}")
            if not callable(obj):
                raise self.settings.error("callable", f"{self.target!r} is not callable")
            self._function = obj
        return self._function

    def _import(self, name: str):
        here = str(self.settings.here)  # a module kept next to vecmig.ini is found too
        for extra_path in (None, here):
            if extra_path:
                sys.path.insert(0, extra_path)
            try:
                return importlib.import_module(name)
            except ModuleNotFoundError as e:
                if e.name != name.split(".")[0]:  # the module exists, one of its imports is missing
                    raise self.settings.error("callable", f"importing {name!r} failed: {e}") from None
            except Exception as e:
                raise self.settings.error("callable", f"importing {name!r} failed: {type(e).__name__}: {e}") from None
            finally:
                if extra_path and extra_path in sys.path:
                    sys.path.remove(extra_path)
        raise self.settings.error("callable", f"no module named {name!r} (looked on sys.path and in {here})")

    def embed_batch(self, texts: list[str], kind: str) -> Any:
        return self.load()(texts, kind)
