"""The revision graph: pure logic over revision headers, no I/O (Alembic's RevisionMap).

Two kinds of edge lead from a revision to the ones it needs: ``down_revision`` (the line it
continues) and ``depends_on`` (applied first, from any line). Heads, branch points, lines and
relative steps (``+N``, ``-N``) follow ``down_revision`` only; what must be applied or un-applied
follows both.

Targets are written as in Alembic: an id or unique prefix; a branch label (the revision that
declares it); ``head``, ``heads``, ``base``; ``X@head``, ``X@heads``, ``X@base`` and ``X@REV`` for
a branch label or revision X; and relative steps ``+N``, ``-N``, ``REV+N``, ``REV-N``, ``X@+N``,
``X@-N``, ``X@REV+N``.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable

from vecmig.errors import GraphError
from vecmig.script.revision import shown_path

UP, DOWN = "up", "down"
RESERVED = ("base", "current", "head", "heads")
_RELATIVE = re.compile(r"(?:(?P<branch>\w+)@)?(?P<start>\w*)(?P<sign>[+-])(?P<n>\d+)")


def _file(rev: Any) -> str:
    return shown_path(rev.path)


def _list(ids: Iterable[str]) -> str:
    return ", ".join(sorted(ids))


def _not_a_revision(ref: str) -> GraphError:
    """``base`` and ``X@base`` name a place below revisions, not a revision."""
    if ref == "base":
        return GraphError("'base' is not a revision (it is below the first one): name a revision, e.g. an id or label@head")
    return GraphError(f"{ref!r} is not a revision: write `{ref[: -len('@base')]}@head` (or `{ref}` as a downgrade target)")


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
        self._labels = self._check_names()
        self._children: dict[str, set[str]] = {r: set() for r in self._revs}
        self._dependents: dict[str, set[str]] = {r: set() for r in self._revs}
        self._deps: dict[str, tuple[str, ...]] = {}
        for rev in self._revs.values():
            for parent in rev.down_revisions:
                if parent not in self._revs:
                    raise GraphError(f"{_file(rev)}: down_revision {parent!r} is not a known revision: fix the id or restore the missing file")
                self._children[parent].add(rev.revision)
            deps = []
            for needed in rev.depends_on:
                # a branch label stands for the revision that declares it, as in Alembic
                target = needed if needed in self._revs else self._labels.get(needed)
                if target is None:
                    raise GraphError(f"{_file(rev)}: depends_on {needed!r} is neither a revision id nor a branch label: use the full id of an existing revision, or a label")
                deps.append(target)
                self._dependents[target].add(rev.revision)
            self._deps[rev.revision] = tuple(dict.fromkeys(deps))
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
        return set(self._revs[rev_id].down_revisions) | set(self._deps[rev_id])

    def _needed_by(self, rev_id: str) -> set[str]:
        return self._children[rev_id] | self._dependents[rev_id]

    def _parents(self, rev_id: str) -> set[str]:
        return set(self._revs[rev_id].down_revisions)

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

    def dependencies(self, rev_id: str) -> tuple[str, ...]:
        """The ids a revision's ``depends_on`` names (a branch label stands for its revision)."""
        return self._deps[rev_id]

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

    def lineage(self, rev_id: str) -> set[str]:
        """The revisions on ``rev_id``'s lines: what it continues and what continues it, along
        ``down_revision`` only (Alembic's "shares lineage")."""
        return self._walk([rev_id], self._parents) | self._walk([rev_id], self._children.__getitem__)

    def applied(self, heads: Iterable[str]) -> set[str]:
        """Every revision applied when the store is at ``heads``."""
        return self.ancestors(heads)

    def heads_of(self, applied: Iterable[str]) -> list[str]:
        """The heads a store records for a set of applied revisions: those not continued inside it."""
        applied = set(applied)
        return sorted(r for r in applied if not self._children[r] & applied)

    def tips(self, heads: Iterable[str]) -> list[str]:
        """Of ``heads``, those no other of them needs: a ``depends_on`` target that another head
        depends on is not where a line ends, so relative steps (``+N``, ``-N``) don't start there.
        Of the script's heads these are Alembic's ``heads --resolve-dependencies``."""
        heads = set(heads)
        below = set().union(*(self.ancestors([h]) - {h} for h in heads)) if heads else set()
        return sorted(heads - below)

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
        """One revision: an id, a unique id prefix, a branch label (the revision that declares it),
        ``head``, ``X@head`` (the head of X's line) or ``X@REV`` (REV, checked to be on X's line)."""
        if ref == "base" or ref.endswith("@base"):
            raise _not_a_revision(ref)
        found = self.resolve(ref)
        if not found:
            raise GraphError("no revisions yet: write one with `vecmig revision -m MESSAGE`")
        if len(found) > 1:
            raise GraphError(f"{ref!r} names several revisions ({', '.join(found)}): name one of them")
        return self._revs[found[0]]

    def resolve(self, ref: str) -> list[str]:
        """The revisions ``ref`` names: one, except ``heads`` and ``X@heads`` (every head of X's
        lines), and ``base`` (none). ``X@base`` is not a revision (see ``downgrade_path``)."""
        if ref in self._revs:
            return [ref]
        if ref == "base":
            return []
        if ref == "heads":
            return self.heads
        if ref == "head":
            heads = self.heads
            if len(heads) != 1:
                raise GraphError(f"multiple heads ({', '.join(heads)}): name one of them" if heads else "no revisions yet: write one with `vecmig revision -m MESSAGE`")
            return heads
        branch, at, where = ref.partition("@")
        if not at:
            return [self._named(ref)]
        anchor = self._anchor(branch)
        if where == "heads":
            return sorted(self._line_heads(anchor))
        if where == "head":
            return [self._line_head(branch, anchor)]
        if where == "base":
            raise _not_a_revision(ref)
        rev_id = self._named(where)
        self._check_on_line(branch, anchor, rev_id)
        return [rev_id]

    def _named(self, ref: str) -> str:
        """An id, a branch label or a unique id prefix."""
        if ref in self._revs:
            return ref
        if ref in self._labels:
            return self._labels[ref]
        if ref in RESERVED or "@" in ref:
            raise GraphError(f"{ref!r} is not a revision here: write an id, a branch label or label@head")
        matches = sorted(r for r in self._revs if r.startswith(ref)) if ref else []
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise GraphError(f"ambiguous revision {ref!r}: it starts {', '.join(matches)}: give more characters")
        raise GraphError(f"unknown revision {ref!r}: see `vecmig history` for the ids")

    def _anchor(self, branch: str) -> str:
        """The revision the X of ``X@...`` stands for: a branch label's revision, or a revision."""
        if branch in self._labels:
            return self._labels[branch]
        if branch in self._revs:
            return branch
        matches = sorted(r for r in self._revs if r.startswith(branch)) if branch else []
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise GraphError(f"ambiguous revision {branch!r}: it starts {', '.join(matches)}: give more characters")
        known = f"the labels are {', '.join(sorted(self._labels))}" if self._labels else "no revision has branch_labels"
        raise GraphError(f"unknown branch label {branch!r}: {known}")

    def _line_heads(self, anchor: str) -> set[str]:
        return {r for r in self._walk([anchor], self._children.__getitem__) if not self._children[r]}

    def _line_head(self, branch: str, anchor: str) -> str:
        heads = self._line_heads(anchor)
        if len(heads) > 1:
            what = f"branch {branch!r}" if branch in self._labels else f"revision {anchor}"
            raise GraphError(f"{what} has several heads ({_list(heads)}): name one of them")
        return heads.pop()

    def _check_on_line(self, branch: str, anchor: str, rev_id: str) -> None:
        if rev_id not in self.lineage(anchor):
            what = f"branch {branch!r}" if branch in self._labels else f"the line of {anchor}"
            raise GraphError(f"revision {rev_id} is not on {what}: see `vecmig history -r {branch}@base:{branch}@heads`")

    def line(self, branch: str) -> set[str]:
        """What ``X@base`` removes: the revision X (a branch label's revision, or a revision), what
        continues it, and its own line down to (not including) the revision where it branched off."""
        at = self._anchor(branch)
        members = self._walk([at], self._children.__getitem__)
        while len(self._revs[at].down_revisions) == 1:
            parent = self._revs[at].down_revisions[0]
            if len(self._children[parent]) > 1:
                break
            members.add(parent)
            at = parent
        return members

    # -- relative steps -------------------------------------------------------------------------

    def _start(self, branch: str | None, current: list[str], applied: set[str], target: str, verb: str) -> str | None:
        """Where ``+N``/``-N`` start: the store's one head that no other head needs, or with a branch
        ``X@``, the store's one head on X's lines (or, going up, the highest applied revision there)."""
        if not branch:
            tips = self.tips(current)
            if len(tips) > 1:
                raise GraphError(
                    f"{target}: the store is at several heads ({', '.join(tips)}): "
                    + (f"say which line, e.g. `vecmig upgrade {tips[0]}{target}`" if verb == UP
                       else f"name the revision to downgrade to, e.g. `{tips[0]}{target}`")
                )
            return tips[0] if tips else None
        lineage = self.lineage(self._anchor(branch))
        on_line = self.heads_of(applied & lineage) if verb == UP else [h for h in current if h in lineage]
        if len(on_line) > 1:
            raise GraphError(f"{target}: the store has several heads on {branch}'s lines ({', '.join(on_line)}): name one, e.g. `{on_line[0]}{target.partition('@')[2]}`")
        if not on_line and verb == DOWN:
            raise GraphError(f"{target}: nothing on {branch}'s lines is applied (the store is at {', '.join(current) or 'base'})")
        return on_line[0] if on_line else None

    def _up(self, start: str | None, n: int, branch: str | None, target: str) -> str | None:
        """The revision ``n`` steps above ``start`` (None: base) along ``down_revision``; with a
        branch, only through revisions on its lines."""
        lineage = self.lineage(self._anchor(branch)) if branch else None
        at = start
        for step in range(n):
            following = sorted(self._children[at]) if at else self.bases
            if lineage is not None:
                following = [r for r in following if r in lineage]
            if not following:
                head = f"{branch}@head" if branch else "head"
                raise GraphError(f"{target}: there are only {step} revisions above {start or 'base'}{f' on {branch}' if branch else ''}: use `vecmig upgrade {head}`")
            if len(following) > 1:
                raise GraphError(f"{target}: the line branches after {at or 'base'} ({', '.join(following)}): name a revision by id, label@head or label@+N")
            at = following[0]
        return at

    def _down(self, start: str, n: int, target: str) -> tuple[str | None, str]:
        """The revision ``n`` steps below ``start`` along ``down_revision`` (None: base, just below
        the root it reached), and the lowest revision the walk reached."""
        at = start
        for step in range(n):
            parents = self._revs[at].down_revisions
            if len(parents) > 1:
                raise GraphError(f"{target}: {at} merges {', '.join(parents)}: name the revision to downgrade to")
            if not parents:
                if step < n - 1:
                    raise GraphError(f"{target}: there are only {step + 1} revisions from {start} down to base: use `vecmig downgrade base`")
                return None, at
            at = parents[0]
        return at, at

    def _relative_start(self, rel: re.Match) -> str:
        start = self._named(rel["start"])
        if rel["branch"]:
            self._check_on_line(rel["branch"], self._anchor(rel["branch"]), start)
        return start

    # -- paths ----------------------------------------------------------------------------------

    def upgrade_path(self, current_heads: Iterable[str], target: str) -> list[Any]:
        """What to apply, in order, to go from ``current_heads`` up to ``target``: ``head``,
        ``heads``, an id or prefix, a label, ``X@head``, ``X@heads``, ``X@REV``, ``+N``, ``X@+N``,
        ``REV+N`` or ``REV-N``."""
        current = sorted(current_heads)
        return self._revisions(self.topo(self.ancestors(self._upgrade_targets(target, current)) - self.applied(current)))

    def _upgrade_targets(self, target: str, current: list[str]) -> list[str]:
        if target == "head":
            heads = self.heads
            if len(heads) > 1:
                raise GraphError(f"multiple heads ({', '.join(heads)}): use `vecmig upgrade heads` or `vecmig merge heads`")
            return heads
        rel = _RELATIVE.fullmatch(target)
        if target == "base" or target.endswith("@base") or (rel and rel["sign"] == "-" and not rel["start"]):
            raise GraphError(f"{target!r} is below the store: use `vecmig downgrade {target}`")
        if not rel:
            return self.resolve(target)
        n = int(rel["n"])
        if rel["start"]:
            start = self._relative_start(rel)
            at = self._up(start, n, rel["branch"], target) if rel["sign"] == "+" else self._down(start, n, target)[0]
        else:
            at = self._up(self._start(rel["branch"], current, self.applied(current), target, UP), n, rel["branch"], target)
        return [at] if at else []

    def downgrade_path(self, current_heads: Iterable[str], target: str) -> list[Any]:
        """What to un-apply, in order (what needs a revision goes before it), to go from
        ``current_heads`` down to ``target``: ``base``, ``-N``, ``X@-N``, an id or prefix, a label,
        ``X@REV``, ``REV-N``, ``REV+N``, ``X@base``."""
        current = sorted(current_heads)
        applied = self.applied(current)
        remove = self._to_remove(target, current, applied) & applied
        return self._revisions(reversed(self.topo(remove)))

    def _to_remove(self, target: str, current: list[str], applied: set[str]) -> set[str]:
        if target == "base":
            return applied
        branch, at, where = target.partition("@")
        if at and where == "base":
            return self.descendants(self.line(branch))
        rel = _RELATIVE.fullmatch(target)
        if rel and rel["sign"] == "+" and not rel["start"]:
            raise GraphError(f"{target!r} is above the store: use `vecmig upgrade {target}`")
        if rel and not rel["start"]:
            start = self._start(rel["branch"], current, applied, target, DOWN)
            if start is None:
                raise GraphError(f"{target}: nothing to downgrade, the store is at base")
            return self._last(start, int(rel["n"]), target)
        if rel:
            start = self._relative_start(rel)
            n = int(rel["n"])
            if rel["sign"] == "+":
                down_to = self._up(start, n, rel["branch"], target)
            else:
                down_to, root = self._down(start, n, target)
                if down_to is None:  # exactly down to base: the line's root goes too
                    return self.descendants([root])
            return self._above(down_to, applied, current, rel["branch"])
        if at and where not in ("head", "heads"):
            return self._above(self.get(target).revision, applied, current, branch)
        return self._above(self.get(target).revision, applied, current)

    def _last(self, start: str, n: int, target: str) -> set[str]:
        """``-N``: the last N revisions of the line ending at ``start``; a merge is the last
        revision of its line that ``-N`` takes (below it the line is two)."""
        if n == 0:
            return set()
        at = start
        for step in range(n - 1):
            parents = self._revs[at].down_revisions
            if not parents:
                raise GraphError(f"{target}: only {step + 1} revisions are applied on this line: use `vecmig downgrade base`")
            if len(parents) > 1:
                raise GraphError(f"{target}: {at} merges {', '.join(parents)}: name the revision to downgrade to")
            at = parents[0]
        return self.descendants([at])

    def _above(self, rev_id: str, applied: set[str], current: list[str], branch: str | None = None) -> set[str]:
        """Downgrading to ``rev_id``: what continues it (and what needs that); with a branch, only
        what continues it on that branch's lines."""
        if rev_id not in applied:
            raise GraphError(f"revision {rev_id} is not applied (the store is at {', '.join(current) or 'base'}): nothing to downgrade to; `vecmig history -i` shows what is applied")
        roots = self._children[rev_id]
        if branch:
            roots = roots & self.lineage(self._anchor(branch))
        return self.descendants(roots)

    # -- stamping -------------------------------------------------------------------------------

    def stamp_heads(self, current_heads: Iterable[str], targets: Iterable[str], *, purge: bool = False) -> list[str]:
        """The heads after ``vecmig stamp TARGETS``, as in Alembic: each target replaces only the
        heads on its own lines (a head below or above it); other lines stay as they are. ``base``
        clears every head, ``X@base`` un-applies X's line (``line``), ``purge`` starts from nothing."""
        current = set() if purge else set(current_heads)
        targets = list(targets)
        if not targets:
            raise GraphError("stamp: name a revision (or base, heads, label@head)")
        revs: set[str] = set()
        lines: set[str] = set()
        for target in targets:
            branch, at, where = target.partition("@")
            if at and where == "base":
                lines |= self.descendants(self.line(branch))
                continue
            if _RELATIVE.fullmatch(target):
                raise GraphError(f"stamp {target}: stamp takes revisions, not steps: name a revision (`vecmig history` lists them)")
            if target == "base":
                current = set()
            revs.update(self.resolve(target))
        for r in revs:
            below = self.ancestors([r]) - {r}
            for other in revs & below:
                raise GraphError(f"stamp: {other} is below {r}: stamp one revision per line")
            if r in lines:
                raise GraphError(f"stamp: {r} is on the line that {' '.join(t for t in targets if t.endswith('@base'))} removes: stamp one of them")
        keep = {h for h in current if not any(h in self.ancestors([r]) or r in self.ancestors([h]) for r in revs)}
        return self.heads_of(self.applied(keep | revs) - lines)

    # -- history --------------------------------------------------------------------------------

    def history(self, rng: str | None = None, current_heads: Iterable[str] = ()) -> list[Any]:
        """Revisions newest first. ``rng`` is ``OLDER:NEWER``; either end may be empty, ``base``,
        ``head(s)``, ``current``, an id, prefix or label, ``X@head(s)``; the older end ``X@base``
        (X's line, as ``downgrade X@base`` removes it). Both ends are included; above the older end
        means continuing it along ``down_revision`` (a revision that only depends on it is not)."""
        ids = set(self._revs)
        if not rng:
            return self._revisions(reversed(self.topo(ids)))
        if rng.count(":") != 1:
            raise GraphError(f"history range {rng!r}: write OLDER:NEWER, e.g. base:head, abc1:, :abc1, current:head, label@base:label@head")
        older, newer = rng.split(":")
        low = self._range_end(older, list(current_heads), lower=True, rng=rng)
        high = self._range_end(newer, list(current_heads), lower=False, rng=rng)
        if low is not None:  # what continues the older end along down_revision, as in Alembic
            ids &= self._walk(low, self._children.__getitem__)
        if high is not None:
            ids &= self.ancestors(high)
            if low and high and not set(low) & self.ancestors(high):
                raise GraphError(f"history range {rng!r}: {older} is not older than {newer}: write OLDER:NEWER")
        return self._revisions(reversed(self.topo(ids)))

    def _range_end(self, word: str, current: list[str], lower: bool, rng: str) -> list[str] | None:
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
        if word.endswith("@base"):
            if not lower:
                raise GraphError(f"history range {rng!r}: {word} can only be the older end: write {word}:{word[:-5]}@head")
            return sorted(self.line(word[:-5]))
        if _RELATIVE.fullmatch(word):
            raise GraphError(f"history range {rng!r}: {word} is a step, not a revision: name a revision, e.g. base:head, abc1:, current:head")
        return self.resolve(word)
