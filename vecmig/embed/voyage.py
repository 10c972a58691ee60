"""``provider = voyage``: Voyage AI's embeddings API (``/v1/embeddings``).

Documents are embedded with ``input_type = document`` and queries with ``query`` (Voyage prepends
its own retrieval prompts). ``dimensions`` sets ``output_dimension`` (voyage-3.5, voyage-3-large);
``truncation = false`` makes a too-long input an error instead of cutting it. The key comes from
``api_key`` or ``VOYAGE_API_KEY``.
"""

from __future__ import annotations

from typing import Any

from vecmig.embed.base import DOCUMENT, Settings
from vecmig.embed.http import HttpEmbedder
from vecmig.embed.openai import parse_data_list


class VoyageEmbedder(HttpEmbedder):
    provider = "voyage"
    default_base_url = "https://api.voyageai.com/v1"
    api_key_env = ("VOYAGE_API_KEY",)
    default_batch_size = 128

    def configure(self, settings: Settings) -> None:
        super().configure(settings)
        self.dimensions = settings.int("dimensions")
        self.truncation = settings.bool("truncation", True)
        if self.dimensions and self._dimension is None:
            self._dimension = self.dimensions

    def options(self) -> dict[str, Any]:
        return {"dimensions": self.dimensions, "truncation": None if self.truncation else False}

    def embed_batch(self, texts: list[str], kind: str) -> list[list[float]]:
        body: dict[str, Any] = {
            "input": texts,
            "model": self.model,
            "input_type": "document" if kind == DOCUMENT else "query",
        }
        if self.dimensions:
            body["output_dimension"] = self.dimensions
        if not self.truncation:
            body["truncation"] = False
        answer = self.client.post_json("embeddings", body)
        return parse_data_list(self, answer, len(texts))  # the same shape as OpenAI's
