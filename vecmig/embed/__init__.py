"""Embedders: ``[embedder:NAME]`` sections of vecmig.ini, loaded by name.

    [embedder:minilm]
    provider = onnx                 ; openai, cohere, voyage, sentence-transformers, fastembed,
                                    ; python, static, onnx; bm25 (sparse)
    model = all-MiniLM-L6-v2-int8

``load_embedder("minilm", config)`` gives an ``Embedder`` (``embed_documents``, ``embed_queries``,
``dimension``, ``fingerprint()``), one per process and section. A sparse embedder
(``embedder.sparse``, a ``SparseEmbedder``) has ``embed_sparse_documents``/``embed_sparse_queries``
instead. Providers are imported only when
an embedder uses them, so that importing vecmig stays fast and model libraries stay optional.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from vecmig.embed.base import DOCUMENT, QUERY, Embedder, EmbedderError, Settings, SparseEmbedder, SparseVector
from vecmig.embed.fingerprint import check_vector_size, fingerprint_changes, probe

#: provider name -> "module:class"; register_provider adds more
PROVIDERS: dict[str, str | type[Embedder]] = {
    "openai": "vecmig.embed.openai:OpenAIEmbedder",
    "cohere": "vecmig.embed.cohere:CohereEmbedder",
    "voyage": "vecmig.embed.voyage:VoyageEmbedder",
    "sentence-transformers": "vecmig.embed.sentence_transformers:SentenceTransformersEmbedder",
    "fastembed": "vecmig.embed.fastembed:FastEmbedEmbedder",
    "python": "vecmig.embed.python:PythonEmbedder",
    "static": "vecmig.embed.static:StaticEmbedder",
    "onnx": "vecmig.embed.onnx:OnnxEmbedder",
    "bm25": "vecmig.embed.bm25:BM25Embedder",
}

_cache: dict[tuple, Embedder] = {}
_cache_lock = threading.Lock()

__all__ = [
    "DOCUMENT", "QUERY", "PROVIDERS", "Embedder", "EmbedderError", "Settings", "SparseEmbedder", "SparseVector",
    "check_vector_size", "close_embedders", "create_embedder", "fingerprint_changes",
    "load_embedder", "probe", "provider_class", "register_provider",
]


def register_provider(name: str, cls: str | type[Embedder]) -> None:
    """Make ``provider = name`` available: an Embedder subclass or its ``"module:Class"`` path."""
    PROVIDERS[name] = cls


def provider_class(name: str, where: str = "[embedder]") -> type[Embedder]:
    entry = PROVIDERS.get(name)
    if entry is None:
        from difflib import get_close_matches

        close = get_close_matches(name, PROVIDERS, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known providers: {', '.join(sorted(PROVIDERS))}"
        raise EmbedderError(f"{where} provider: unknown provider {name!r}: {hint}")
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        entry = getattr(importlib.import_module(module), attr)
        PROVIDERS[name] = entry
    return entry


def create_embedder(name: str, values: dict[str, str], here=None) -> Embedder:
    """A new embedder from the keys of an ``[embedder:NAME]`` section (not cached)."""
    settings = Settings(name, values, here)
    provider = settings.str("provider", required=True)
    return provider_class(provider, settings.where)(name, settings)


def load_embedder(name: str, config: Any) -> Embedder:
    """The embedder ``[embedder:NAME]`` of ``config``, created once per process and section."""
    sections = getattr(config, "embedders", {}) or {}
    if name not in sections:
        where = f"{config.path}: " if getattr(config, "path", None) else ""
        defined = f" (defined: {', '.join(sorted(sections))})" if sections else ""
        raise EmbedderError(f"{where}embedder {name!r} is not defined: add an [embedder:{name}] section to vecmig.ini{defined}")
    values = sections[name]
    here = getattr(config, "here", None)
    key = (name, tuple(sorted(values.items())), str(here))
    with _cache_lock:
        embedder = _cache.get(key)
        if embedder is None:
            embedder = _cache[key] = create_embedder(name, values, here)
        return embedder


def close_embedders() -> None:
    """Close and forget every cached embedder (clients, thread pools, loaded models)."""
    with _cache_lock:
        for embedder in _cache.values():
            embedder.close()
        _cache.clear()
