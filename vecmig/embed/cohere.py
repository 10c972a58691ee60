"""``provider = cohere``: Cohere's v2 embed API (``/v2/embed``).

Documents are embedded with ``input_type = search_document`` and queries with ``search_query``
(override with ``document_input_type`` / ``query_input_type``, e.g. ``clustering``).
``dimensions`` sets ``output_dimension`` (embed-v4); ``truncate`` is NONE, START or END. The key
comes from ``api_key``, ``CO_API_KEY`` or ``COHERE_API_KEY``.
"""

from __future__ import annotations

from typing import Any

from vecmig.embed.base import DOCUMENT, Settings
from vecmig.embed.http import HttpEmbedder

INPUT_TYPES = ("search_document", "search_query", "classification", "clustering", "image")


class CohereEmbedder(HttpEmbedder):
    provider = "cohere"
    default_base_url = "https://api.cohere.com"
    api_key_env = ("CO_API_KEY", "COHERE_API_KEY")
    default_batch_size = 96  # the API's limit of texts per request

    def configure(self, settings: Settings) -> None:
        super().configure(settings)
        self.document_input_type = settings.str("document_input_type", "search_document", choices=INPUT_TYPES)
        self.query_input_type = settings.str("query_input_type", "search_query", choices=INPUT_TYPES)
        self.dimensions = settings.int("dimensions")
        self.truncate = settings.str("truncate", choices=("NONE", "START", "END"))
        if self.dimensions and self._dimension is None:
            self._dimension = self.dimensions

    def options(self) -> dict[str, Any]:
        return {
            "input_type": {"document": self.document_input_type, "query": self.query_input_type},
            "dimensions": self.dimensions,
            "truncate": self.truncate,
        }

    def embed_batch(self, texts: list[str], kind: str) -> list[list[float]]:
        body: dict[str, Any] = {
            "model": self.model,
            "texts": texts,
            "input_type": self.document_input_type if kind == DOCUMENT else self.query_input_type,
            "embedding_types": ["float"],
        }
        if self.dimensions:
            body["output_dimension"] = self.dimensions
        if self.truncate:
            body["truncate"] = self.truncate
        answer = self.client.post_json("v2/embed", body)
        embeddings = answer.get("embeddings") if isinstance(answer, dict) else None
        vectors = embeddings.get("float") if isinstance(embeddings, dict) else None
        if not isinstance(vectors, list) or not all(isinstance(v, list) for v in vectors):
            raise self.malformed("no `embeddings.float` list of vectors")
        if len(vectors) != len(texts):
            raise self.malformed(f"{len(vectors)} embeddings for {len(texts)} texts")
        return vectors
