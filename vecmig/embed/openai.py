"""``provider = openai``: the OpenAI embeddings API and everything that speaks it.

``base_url`` points anywhere OpenAI-compatible (vLLM, Ollama's ``/v1``, TEI, LM Studio, llama.cpp);
``dimensions`` shortens Matryoshka models (text-embedding-3-*); ``api_version`` (+ ``deployment``)
switches to Azure OpenAI's URL and header. The key comes from ``api_key`` or ``OPENAI_API_KEY``
(``AZURE_OPENAI_API_KEY`` for Azure), and is optional for a ``base_url`` of your own.
"""

from __future__ import annotations

from typing import Any

from vecmig.embed.base import Settings
from vecmig.embed.http import HttpEmbedder


class OpenAIEmbedder(HttpEmbedder):
    provider = "openai"
    default_base_url = "https://api.openai.com/v1"
    api_key_env = ("OPENAI_API_KEY",)

    def configure(self, settings: Settings) -> None:
        self.api_version = settings.str("api_version")
        self.deployment = settings.str("deployment")
        if self.api_version:  # Azure OpenAI: the resource's URL, the deployment in the path
            self.api_key_env = ("AZURE_OPENAI_API_KEY",)
            if not settings.str("base_url"):
                raise settings.error("base_url", "is required with api_version (Azure): https://RESOURCE.openai.azure.com")
        elif self.deployment:
            raise settings.error("deployment", "only applies to Azure OpenAI: set `api_version` too, or remove it")
        super().configure(settings)
        self.dimensions = settings.int("dimensions")
        if self.dimensions and self._dimension is None:
            self._dimension = self.dimensions

    def auth_headers(self) -> dict[str, str]:
        if self.api_version and self.api_key:
            return {"api-key": self.api_key}
        return super().auth_headers()

    def options(self) -> dict[str, Any]:
        return {"dimensions": self.dimensions}  # not base_url: the same model may be served from many places

    def embed_batch(self, texts: list[str], kind: str) -> list[list[float]]:
        body: dict[str, Any] = {"input": texts, "model": self.model, "encoding_format": "float"}
        if self.dimensions:
            body["dimensions"] = self.dimensions
        if self.api_version:
            path = f"openai/deployments/{self.deployment or self.model}/embeddings"
            answer = self.client.post_json(path, body, params={"api-version": self.api_version})
        else:
            answer = self.client.post_json("embeddings", body)
        return parse_data_list(self, answer, len(texts))


def parse_data_list(embedder: HttpEmbedder, answer: Any, count: int) -> list[list[float]]:
    """Vectors from the OpenAI answer shape ``{"data": [{"embedding": [...], "index": i}, ...]}``."""
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list):
        raise embedder.malformed("no `data` list")
    if len(data) != count:
        raise embedder.malformed(f"{len(data)} embeddings for {count} inputs")
    if all(isinstance(d, dict) and isinstance(d.get("index"), int) for d in data):
        data = sorted(data, key=lambda d: d["index"])
    vectors = []
    for d in data:
        vec = d.get("embedding") if isinstance(d, dict) else None
        if not isinstance(vec, list):
            raise embedder.malformed("an item of `data` has no `embedding` list")
        vectors.append(vec)
    return vectors
