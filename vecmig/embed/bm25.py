"""``provider = bm25``: BM25 term weights as sparse vectors, computed locally (no model, no download).

A text is case-folded and split into Unicode words (letters and digits; a possessive ``'s`` is
dropped), English stop words are removed (``stopwords = none`` keeps them) and, with
``stemmer = minimal``, English plurals are reduced (Harman's S-stemmer, as Lucene's
EnglishMinimalStemmer). Each term's index is the low 31 bits of its blake2b hash: the same on every
machine and in every process, with no vocabulary to ship.

A document's weight for a term is BM25's saturated term frequency,
``tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avg_len))`` (``len``: the document's terms; ``k1``,
``b``, ``avg_len`` default to 1.2, 0.75, 256). A query weighs each of its terms 1.0. Documents carry
no IDF: declare the sparse vector with ``modifier: idf`` and Qdrant computes the IDF over the
collection itself, kept current as points come and go; the dot product of a query with a document
is then the document's BM25 score.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from functools import lru_cache
from typing import Any

from vecmig.embed.base import DOCUMENT, Settings, SparseEmbedder

#: Lucene's default English stop words (``EnglishAnalyzer.ENGLISH_STOP_WORDS_SET``)
ENGLISH_STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)
STOP_WORDS = {"english": ENGLISH_STOP_WORDS, "none": frozenset()}
STEMMERS = ("none", "minimal")
#: words of letters and digits, with inner apostrophes ("don't", "o'neil")
WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
INDEX_MASK = 0x7FFFFFFF


@lru_cache(maxsize=1 << 16)
def term_index(term: str) -> int:
    """A term's index: the low 31 bits of its blake2b digest (stable everywhere, fits Qdrant's u32)."""
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=8).digest(), "little") & INDEX_MASK


def minimal_stem(word: str) -> str:
    """English plural -> singular, conservatively (Harman's S-stemmer): queries -> query,
    capitals -> capital, boxes -> boxe; words in -ss, -us, -aies, -eies, -aes, -ees, -oes stay."""
    if len(word) < 3 or word[-1] != "s" or word[-2] in "us":
        return word
    if word[-2] == "e":
        if len(word) > 3 and word[-3] == "i" and word[-4] not in "ae":
            return word[:-3] + "y"
        if word[-3] in "iaoe":
            return word
    return word[:-1]


class BM25Embedder(SparseEmbedder):
    provider = "bm25"
    default_batch_size = 1024

    def default_model(self) -> str:
        return "bm25"

    def configure(self, settings: Settings) -> None:
        if self.model != "bm25":
            raise settings.error("model", f"{self.model!r} is not a model of provider bm25: leave `model` out")
        self.k1 = settings.float("k1", 1.2)
        self.b = settings.float("b", 0.75)
        if self.b > 1:
            raise settings.error("b", f"{self.b} is more than 1: b is between 0 (no length normalization) and 1")
        self.avg_len = settings.float("avg_len", 256.0)
        if self.avg_len <= 0:
            raise settings.error("avg_len", "must be more than 0: the average number of terms in a document")
        self.stopwords = settings.str("stopwords", "english", choices=tuple(STOP_WORDS))
        self.stemmer = settings.str("stemmer", "none", choices=STEMMERS)
        self._stop = STOP_WORDS[self.stopwords]

    def options(self) -> dict[str, Any]:
        return {"k1": self.k1, "b": self.b, "avg_len": self.avg_len, "stopwords": self.stopwords, "stemmer": self.stemmer}

    def terms(self, text: str) -> list[str]:
        """The text's terms, in order, as they are weighted and hashed."""
        out = []
        for word in WORD.findall(text.casefold()):
            word = word.replace("’", "'")
            if word.endswith("'s"):
                word = word[:-2]
            if word in self._stop:
                continue
            out.append(minimal_stem(word) if self.stemmer == "minimal" else word)
        return out

    def embed_sparse_batch(self, texts: list[str], kind: str) -> list[tuple[list[int], list[float]]]:
        return [self.document_weights(t) if kind == DOCUMENT else self.query_weights(t) for t in texts]

    def document_weights(self, text: str) -> tuple[list[int], list[float]]:
        terms = self.terms(text)
        counts = Counter(term_index(t) for t in terms)  # terms whose hashes collide count as one
        norm = self.k1 * (1 - self.b + self.b * len(terms) / self.avg_len)
        indices = sorted(counts)
        return indices, [counts[i] * (self.k1 + 1) / (counts[i] + norm) for i in indices]

    def query_weights(self, text: str) -> tuple[list[int], list[float]]:
        indices = sorted({term_index(t) for t in self.terms(text)})
        return indices, [1.0] * len(indices)
