"""Report layer: what a report says, independent of format (html.py and markdown.py render it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.report.claims import ClaimResult


@dataclass
class Figure:
    section: str
    filename: str
    caption: str


@dataclass
class ReportContent:
    title: str
    claims: list[ClaimResult]
    table_header: list[str]
    table_rows: list[list[str]]
    row_classes: list[str]
    figures: list[Figure]
    environment: list[tuple[str, str]]
    failures: list[tuple[str, str]]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def claim_counts(self) -> str:
        counts = {s: sum(c.status == s for c in self.claims) for s in ("pass", "fail", "missing")}
        return ", ".join(f"{n} {s}" for s, n in counts.items())
