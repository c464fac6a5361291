"""What the engine keeps in memory of a growing history: every live item, and only the newest
finished ones.

Chains and signals accumulate for as long as a server runs. The live ones (a chain still
trading, a signal still waiting) are needed for every decision; the finished ones only for
snapshots and late updates. `Retained` keeps all live items and the `bound` most recently
finished, in the order they finished; older finished items leave memory (the database keeps
them). Each finished item carries its finish rank, a number that grows with every item that
finishes, so the database can return the same newest ones after a restart.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class Retained(Mapping[str, T], Generic[T]):
    """Live items by key, and the newest `bound` finished ones in order of finishing."""

    def __init__(self, bound: int) -> None:
        if bound < 0:
            raise ValueError("bound must not be negative")
        self.bound = bound
        self.live: dict[str, T] = {}
        self.finished: OrderedDict[str, T] = OrderedDict()
        self._rank: dict[str, int] = {}
        self._next_rank = 1

    def __getitem__(self, key: str) -> T:
        if key in self.live:
            return self.live[key]
        return self.finished[key]

    def __iter__(self) -> Iterator[str]:
        yield from self.live
        yield from self.finished

    def __len__(self) -> int:
        return len(self.live) + len(self.finished)

    def __contains__(self, key: object) -> bool:
        return key in self.live or key in self.finished

    def rank(self, key: str) -> int | None:
        """The finish rank of a retained finished item; None for a live or unknown one."""
        return self._rank.get(key)

    def put(self, key: str, item: T, *, done: bool) -> list[str]:
        """Store an item's new state; returns the keys of finished items it pushed out.

        A finished item keeps its place (and rank) when it changes again; one that finishes
        now, or comes back from the database, becomes the newest."""
        if not done:
            if key in self.finished:
                raise ValueError(f"{key} has already finished")
            self.live[key] = item
            return []
        self.live.pop(key, None)
        if key in self.finished:
            self.finished[key] = item
            return []
        return self._add_finished(key, item, self._next_rank)

    def load(self, key: str, item: T, rank: int | None) -> list[str]:
        """Take an item back from the database: live when `rank` is None, else finished with
        that rank (load finished items oldest first)."""
        if rank is None:
            return self.put(key, item, done=False)
        self.live.pop(key, None)
        return self._add_finished(key, item, rank)

    def _add_finished(self, key: str, item: T, rank: int) -> list[str]:
        self.finished[key] = item
        self._rank[key] = rank
        self._next_rank = max(self._next_rank, rank + 1)
        evicted: list[str] = []
        while len(self.finished) > self.bound:
            oldest, _ = self.finished.popitem(last=False)
            del self._rank[oldest]
            evicted.append(oldest)
        return evicted
