"""``provider = fastembed``: Qdrant's FastEmbed (ONNX models), loaded on first use.

``pip install 'vecmig[fastembed]'``. ``model`` is a FastEmbed model name (e.g.
``BAAI/bge-small-en-v1.5``); ``model_path`` loads an already downloaded model folder, ``cache_dir``
and ``threads`` pass through. Documents go through ``passage_embed`` and queries through
``query_embed``, which add the prefixes that models such as BGE and E5 expect.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vecmig.embed.base import DOCUMENT, Embedder, Settings, missing_extra


class FastEmbedEmbedder(Embedder):
    provider = "fastembed"
    default_batch_size = 256

    def configure(self, settings: Settings) -> None:
        self.model_path = settings.path("model_path")
        self.cache_dir = settings.path("cache_dir")
        self.threads = settings.int("threads")
        self._model = None

    def load(self):
        with self._lock:
            if self._model is None:
                try:
                    from fastembed import TextEmbedding
                except ImportError:
                    raise missing_extra(self.where, "fastembed", "fastembed") from None
                kwargs: dict[str, Any] = {"model_name": self.model}
                if self.cache_dir:
                    kwargs["cache_dir"] = str(self.cache_dir)
                if self.threads:
                    kwargs["threads"] = self.threads
                if self.model_path:
                    kwargs["specific_model_path"] = str(self.model_path)
                self._model = TextEmbedding(**kwargs)
        return self._model

    def embed_batch(self, texts: list[str], kind: str) -> np.ndarray:
        model = self.load()
        if kind == DOCUMENT:
            vectors = model.passage_embed(texts, batch_size=len(texts))
        else:
            vectors = model.query_embed(texts, batch_size=len(texts))
        return np.stack(list(vectors))
