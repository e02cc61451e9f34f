"""Counting the stored records a reader could not use, so one corrupt line never stops the loop."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_EXAMPLES = 5


@dataclass
class SkippedRecords:
    """Corrupt capture or outcome records skipped by a reader during one run.

    Attributes:
        counts: source (``capture``, ``outcomes``) -> records skipped; an unreadable capture object counts once.
        examples: where and why, for the first few, for the logs (never the record's content).
    """

    counts: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def skip(self, source: str, where: str, reason: str) -> None:
        self.counts[source] = self.counts.get(source, 0) + 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{where}: {reason}")

    def count(self, source: str, n: int) -> None:
        """Add ``n`` records skipped earlier (by whoever built an aggregate), without examples."""
        if n:
            self.counts[source] = self.counts.get(source, 0) + n

    def absorb(self, other: SkippedRecords) -> None:
        """Add ``other``'s counts and, while there is room, its examples."""
        for source, n in other.counts.items():
            self.count(source, n)
        self.examples.extend(other.examples[: MAX_EXAMPLES - len(self.examples)])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        """``{"capture": n, "outcomes": m}``, both always present."""
        return {"capture": self.counts.get("capture", 0), "outcomes": self.counts.get("outcomes", 0)}
