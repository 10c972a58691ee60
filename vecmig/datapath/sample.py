"""Uniform samples of a stream of unknown length, seeded: the same data gives the same sample."""

from __future__ import annotations

import random
from typing import Any

#: samples are drawn with a fixed seed: the same data gives the same sample, run after run
SEED = 0


class Reservoir:
    """A uniform sample of ``size`` items from a stream of unknown length (Algorithm R), seeded."""

    def __init__(self, size: int, seed: int = SEED):
        self.size, self.items, self.seen = size, [], 0
        self._random = random.Random(seed)

    def offer(self, item: Any) -> None:
        self.seen += 1
        if len(self.items) < self.size:
            self.items.append(item)
            return
        slot = self._random.randrange(self.seen)
        if slot < self.size:
            self.items[slot] = item
