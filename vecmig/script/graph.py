"""The revision graph: pure logic over revision headers, no I/O (Alembic's RevisionMap).

Two kinds of edge lead from a revision to the ones it needs: ``down_revision`` (the line it
continues) and ``depends_on`` (applied first, from any line). Heads, branch points and relative
steps (``+N``, ``-N``) follow ``down_revision`` only; what must be applied or un-applied follows both.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable

from vecmig.errors import GraphError
from vecmig.script.revision import shown_path

UP, DOWN = "up", "down"
RESERVED = ("base", "current", "head", "heads")
_RELATIVE = re.compile(r"(?P<start>[^+-]*)(?P<sign>[+-])(?P<n>\d+)")


def _file(rev: Any) -> str:
    return shown_path(rev.path)


class RevisionGraph:
    """Built from revision-like objects (``revision``, ``down_revisions``, ``depends_on``,
    ``branch_labels``, ``path``); checks the graph is sound and resolves targets and paths."""

    def __init__(self, revisions: Iterable[Any]):
        self._revs: dict[str, Any] = {}
        for rev in revisions:
            other = self._revs.get(rev.revision)
            if other is not None:
                raise GraphError(f"revision id {rev.revision!r} is in two files, {_file(other)} and {_file(rev)}: give one of them a new id")
            self._revs[rev.revision] = rev
        self._children: dict[str, set[str]] = {r: set() for r in self._revs}
        self._dependents: dict[str, set[str]] = {r: set() for r in self._revs}
        for rev in self._revs.values():
            for parent in rev.down_revisions:
                if parent not in self._revs:
                    raise GraphError(f"{_file(rev)}: down_revision {parent!r} is not a known revision: fix the id or restore the missing file")
                self._children[parent].add(rev.revision)
            for needed in rev.depends_on:
                if needed not in self._revs:
                    raise GraphError(f"{_file(rev)}: depends_on {needed!r} is not a known revision: use the full id of an existing revision")
                self._dependents[needed].add(rev.revision)
        self._labels = self._check_names()
        self._rank = {r: i for i, r in enumerate(self._order())}

    def _check_names(self) -> dict[str, str]:
        labels: dict[str, str] = {}
        for rev in self._revs.values():
            if rev.revision in RESERVED:
                raise GraphError(f"{_file(rev)}: {rev.revision!r} is a reserved word, not a revision id: pick another id")
            for label in rev.branch_labels:
                if label in RESERVED:
                    raise GraphError(f"{_file(rev)}: {label!r} is a reserved word, not a branch label: pick another label")
                if label in self._revs:
                    raise GraphError(f"{_file(rev)}: branch label {label!r} is also a revision id: pick another label")
                if label in labels:
                    first = _file(self._revs[labels[label]])
                    raise GraphError(f"branch label {label!r} is declared twice, in {first} and {_file(rev)}: keep it on one revision")
                labels[label] = rev.revision
        return labels

    def _order(self) -> list[str]:
        """Every id, needed revisions first; depth-first, so a line is listed before the next one."""
        waiting = {r: len(self._needs(r)) for r in self._revs}
        ready = sorted((r for r, n in waiting.items() if n == 0), reverse=True)
        order = []
        while ready:
            r = ready.pop()
            order.append(r)
            for child in sorted(self._needed_by(r), reverse=True):
                waiting[child] -= 1
                if waiting[child] == 0:
                    ready.append(child)
        if len(order) < len(self._revs):
            raise GraphError(self._cycle_message(set(self._revs) - set(order)))
        return order

    def _cycle_message(self, stuck: set[str]) -> str:
        # every stuck revision needs another stuck one: walking down from any of them repeats
        walk: list[str] = []
        at = min(stuck)
        while at not in walk:
            walk.append(at)
            at = min(self._needs(at) & stuck)
        cycle = walk[walk.index(at):] + [at]
        cycle.reverse()
        files = ", ".join(sorted({_file(self._revs[r]) for r in cycle}))
        return f"revision cycle {' -> '.join(cycle)}: fix down_revision or depends_on in one of {files}"

    def _needs(self, rev_id: str) -> set[str]:
        rev = self._revs[rev_id]
        return set(rev.down_revisions) | set(rev.depends_on)

    def _needed_by(self, rev_id: str) -> set[str]:
        return self._children[rev_id] | self._dependents[rev_id]

    # -- the shape ------------------------------------------------------------------------------

    def __contains__(self, rev_id: object) -> bool:
        return rev_id in self._revs

    def __len__(self) -> int:
        return len(self._revs)

    @property
    def heads(self) -> list[str]:
        """Revisions no other revision continues (``depends_on`` doesn't count)."""
        return sorted(r for r, children in self._children.items() if not children)

    @property
    def bases(self) -> list[str]:
        return sorted(r for r, rev in self._revs.items() if not rev.down_revisions)

    @property
    def labels(self) -> dict[str, str]:
        """Each branch label and the revision that declares it."""
        return dict(self._labels)

    def branch_points(self) -> list[str]:
        """Revisions continued by more than one revision."""
        return sorted(r for r, children in self._children.items() if len(children) > 1)

    def ancestors(self, ids: Iterable[str]) -> set[str]:
        """``ids`` and everything they need (down_revision and depends_on, transitively)."""
        return self._walk(ids, self._needs)

    def descendants(self, ids: Iterable[str]) -> set[str]:
        """``ids`` and everything that needs them."""
        return self._walk(ids, self._needed_by)

    def _walk(self, ids: Iterable[str], step: Callable[[str], set[str]]) -> set[str]:
        todo = list(self._known(ids))
        seen: set[str] = set()
        while todo:
            r = todo.pop()
            if r not in seen:
                seen.add(r)
                todo.extend(step(r))
        return seen

    def _known(self, ids: Iterable[str]) -> list[str]:
        ids = [ids] if isinstance(ids, str) else list(ids)
        for r in ids:
            if r not in self._revs:
                raise GraphError(f"unknown revision {r!r}: see `vecmig history` for the ids")
        return ids

    def applied(self, heads: Iterable[str]) -> set[str]:
        """Every revision applied when the store is at ``heads``."""
        return self.ancestors(heads)

    def heads_of(self, applied: Iterable[str]) -> list[str]:
        """The heads a store records for a set of applied revisions: those not continued inside it."""
        applied = set(applied)
        return sorted(r for r in applied if not self._children[r] & applied)

    def heads_after(self, current_heads: Iterable[str], rev_id: str, direction: str) -> list[str]:
        """The heads once ``rev_id`` is applied (``up``) or un-applied (``down``)."""
        if direction not in (UP, DOWN):
            raise ValueError(f"direction must be {UP!r} or {DOWN!r}, not {direction!r}")
        applied = self.applied(current_heads)
        if direction == UP:
            applied.add(rev_id)
        else:
            applied.discard(rev_id)
        return self.heads_of(applied)

    def topo(self, ids: Iterable[str]) -> list[str]:
        """``ids`` in apply order (needed revisions first), the same order every time."""
        return sorted(set(self._known(ids)), key=self._rank.__getitem__)

    def _revisions(self, ids: Iterable[str]) -> list[Any]:
        return [self._revs[r] for r in ids]

    # -- naming revisions -----------------------------------------------------------------------

    def get(self, ref: str) -> Any:
        """A revision by id, unique id prefix, branch label (its head), ``head`` or ``label@head``."""
        if ref in self._revs:
            return self._revs[ref]
        if ref == "head":
            heads = self.heads
            if len(heads) != 1:
                raise GraphError(f"multiple heads ({', '.join(heads)}): name one of them" if heads else "no revisions yet: write one with `vecmig revision -m MESSAGE`")
            return self._revs[heads[0]]
        label, at, where = ref.partition("@")
        if at:
            if where != "head":
                raise GraphError(f"{ref!r} is not a revision: write `{label}@head` (or `{label}@base` as a downgrade target)")
            return self._revs[self._label_head(label)]
        if ref in self._labels:
            return self._revs[self._label_head(ref)]
        matches = sorted(r for r in self._revs if r.startswith(ref)) if ref else []
        if len(matches) == 1:
            return self._revs[matches[0]]
        if matches:
            raise GraphError(f"ambiguous revision {ref!r}: it starts {', '.join(matches)}: give more characters")
        raise GraphError(f"unknown revision {ref!r}: see `vecmig history` for the ids")

    def _label_members(self, label: str) -> set[str]:
        """A labelled line: the labelled revision, what continues it, and its own line down to
        (not including) the revision where it branched off."""
        if label not in self._labels:
            known = f"the labels are {', '.join(sorted(self._labels))}" if self._labels else "no revision has branch_labels"
            raise GraphError(f"unknown branch label {label!r}: {known}")
        at = self._labels[label]
        members = self._walk([at], self._children.__getitem__)
        while len(self._revs[at].down_revisions) == 1:
            parent = self._revs[at].down_revisions[0]
            if len(self._children[parent]) > 1:
                break
            members.add(parent)
            at = parent
        return members

    def _label_head(self, label: str) -> str:
        heads = sorted(r for r in self._label_members(label) if not self._children[r])
        if len(heads) > 1:
            raise GraphError(f"branch {label!r} has several heads ({', '.join(heads)}): name one of them")
        return heads[0]

    # -- paths ----------------------------------------------------------------------------------

    def upgrade_path(self, current_heads: Iterable[str], target: str) -> list[Any]:
        """What to apply, in order, to go from ``current_heads`` up to ``target``: ``head``,
        ``heads``, an id or prefix, a label, ``label@head``, ``+N`` or ``ID+N``."""
        current = sorted(current_heads)
        return self._revisions(self.topo(self.ancestors(self._upgrade_targets(target, current)) - self.applied(current)))

    def _upgrade_targets(self, target: str, current: list[str]) -> list[str]:
        if target == "heads":
            return self.heads
        if target == "head":
            heads = self.heads
            if len(heads) > 1:
                raise GraphError(f"multiple heads ({', '.join(heads)}): use `vecmig upgrade heads` or `vecmig merge heads`")
            return heads
        relative = _RELATIVE.fullmatch(target)
        if target == "base" or (relative and relative["sign"] == "-"):
            raise GraphError(f"{target!r} is below the store: use `vecmig downgrade {target}`")
        if relative:
            return self._steps_up(relative["start"], int(relative["n"]), current, target)
        return [self.get(target).revision]

    def _steps_up(self, start: str, n: int, current: list[str], target: str) -> list[str]:
        if start:
            at = self.get(start).revision
        elif len(current) > 1:
            raise GraphError(f"{target}: the store is at several heads ({', '.join(current)}): say which line, e.g. `vecmig upgrade {current[0]}{target}`")
        else:
            at = current[0] if current else None
        origin = at or "base"
        for step in range(n):
            following = sorted(self._children[at]) if at else self.bases
            if not following:
                raise GraphError(f"{target}: there are only {step} revisions above {origin}: use `vecmig upgrade head`")
            if len(following) > 1:
                raise GraphError(f"{target}: the line branches after {at or 'base'} ({', '.join(following)}): upgrade to a revision by id or to label@head")
            at = following[0]
        return [at] if at else []

    def downgrade_path(self, current_heads: Iterable[str], target: str) -> list[Any]:
        """What to un-apply, in order (what needs a revision goes before it), to go from
        ``current_heads`` down to ``target``: ``base``, ``-N``, an id or prefix, ``ID-N``, ``label@base``."""
        current = sorted(current_heads)
        applied = self.applied(current)
        remove = self._to_remove(target, current, applied) & applied
        return self._revisions(reversed(self.topo(remove)))

    def _to_remove(self, target: str, current: list[str], applied: set[str]) -> set[str]:
        if target == "base":
            return applied
        label, at, where = target.partition("@")
        if at and where == "base":
            return self.descendants(self._label_members(label))
        relative = _RELATIVE.fullmatch(target)
        if relative and relative["sign"] == "+":
            raise GraphError(f"{target!r} is above the store: use `vecmig upgrade {target}`")
        if relative and relative["start"]:
            return self._steps_down(self.get(relative["start"]).revision, int(relative["n"]), applied, current, target)
        if relative:
            return self._last(int(relative["n"]), current, target)
        return self._above(self.get(target).revision, applied, current)

    def _last(self, n: int, current: list[str], target: str) -> set[str]:
        """``-N``: the last N revisions of the store's single line."""
        if not current:
            raise GraphError(f"{target}: nothing to downgrade, the store is at base")
        if len(current) > 1:
            raise GraphError(f"{target}: the store is at several heads ({', '.join(current)}): name the revision to downgrade to, e.g. `{current[0]}{target}`")
        if n == 0:
            return set()
        at = current[0]
        for step in range(n - 1):
            parents = self._revs[at].down_revisions
            if not parents:
                raise GraphError(f"{target}: only {step + 1} revisions are applied on this line: use `vecmig downgrade base`")
            if len(parents) > 1:
                raise GraphError(f"{target}: {at} merges {', '.join(parents)}: name the revision to downgrade to")
            at = parents[0]
        return self.descendants([at])

    def _steps_down(self, start: str, n: int, applied: set[str], current: list[str], target: str) -> set[str]:
        """``ID-N``: down to the revision N steps below ``start`` on its line."""
        at = start
        for step in range(n):
            parents = self._revs[at].down_revisions
            if len(parents) > 1:
                raise GraphError(f"{target}: {at} merges {', '.join(parents)}: name the revision to downgrade to")
            if not parents:
                if step < n - 1:
                    raise GraphError(f"{target}: there are only {step + 1} revisions from {start} down to base: use `vecmig downgrade base`")
                return self.descendants([at])
            at = parents[0]
        return self._above(at, applied, current)

    def _above(self, rev_id: str, applied: set[str], current: list[str]) -> set[str]:
        """Downgrading to ``rev_id``: what continues it (and what needs that)."""
        if rev_id not in applied:
            raise GraphError(f"revision {rev_id} is not applied (the store is at {', '.join(current) or 'base'}): nothing to downgrade to; `vecmig history -i` shows what is applied")
        return self.descendants(self._children[rev_id])

    def history(self, rng: str | None = None, current_heads: Iterable[str] = ()) -> list[Any]:
        """Revisions newest first. ``rng`` is ``OLDER:NEWER``; either end may be empty, ``base``,
        ``head(s)``, ``current``, an id, prefix or label. Both ends are included."""
        ids = set(self._revs)
        if not rng:
            return self._revisions(reversed(self.topo(ids)))
        if rng.count(":") != 1:
            raise GraphError(f"history range {rng!r}: write OLDER:NEWER, e.g. base:head, abc1:, :abc1, current:head")
        older, newer = rng.split(":")
        low = self._range_end(older, list(current_heads), lower=True)
        high = self._range_end(newer, list(current_heads), lower=False)
        if low is not None:
            ids &= self.descendants(low)
        if high is not None:
            ids &= self.ancestors(high)
            if low and high and not set(low) <= self.ancestors(high):
                raise GraphError(f"history range {rng!r}: {older} is not older than {newer}: write OLDER:NEWER")
        return self._revisions(reversed(self.topo(ids)))

    def _range_end(self, word: str, current: list[str], lower: bool) -> list[str] | None:
        """The revisions an end of a range names; None when the end is open."""
        if word in ("", "base") and lower:
            return None
        if word in ("", "head", "heads") and not lower:
            return None
        if word == "base":
            return []
        if word in ("head", "heads"):
            return self.heads
        if word == "current":
            return current if current or not lower else None
        return [self.get(word).revision]
