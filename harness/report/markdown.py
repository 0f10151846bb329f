"""Report layer: render a ReportContent as report.md (the same findings as text)."""

from __future__ import annotations

from harness.report.content import ReportContent


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def render_markdown(content: ReportContent) -> str:
    lines = [f"# {content.title}", "", "## Claim scoreboard", ""]
    if content.claims:
        lines += [content.claim_counts(), ""]
        lines += _table(
            ["result", "lecture claim", "test", "measured", "runs", "note"],
            [[c.status.upper(), c.statement, f"`{c.expectation}`", c.measured_text,
              str(c.runs_used), c.detail] for c in content.claims],
        )
    else:
        lines += ["This sweep declares no claims.", ""]
    lines += ["## Summary", ""]
    lines += _table(content.table_header, content.table_rows)
    lines += ["Seeds aggregated as mean ± standard deviation; all results in `results.csv`.", ""]
    lines += [note + "\n" for note in content.notes]
    section = None
    for figure in content.figures:
        if figure.section != section:
            section = figure.section
            lines += [f"## {section}", ""]
        lines += [f"![{figure.caption}]({figure.filename})", "", figure.caption, ""]
    if content.failures:
        lines += ["## Failed runs", ""]
        lines += _table(["run", "error"], [list(f) for f in content.failures])
    lines += ["## Environment", ""]
    lines += _table(["item", "value"], [list(i) for i in content.environment])
    if content.problems:
        lines += ["## Unreadable files", ""] + [f"- {p}" for p in content.problems] + [""]
    return "\n".join(lines)
