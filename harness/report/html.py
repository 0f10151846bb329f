"""Report layer: render a ReportContent as one self-contained index.html (inline CSS, images by
relative file name in the same folder, no scripts and no external assets)."""

from __future__ import annotations

from html import escape

from harness.report.content import ReportContent

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222;
       padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1.5em; font-size: .88em; }
th, td { border: 1px solid #ccc; padding: .25em .55em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { background: #dff5df; } .fail { background: #fadcdc; } .missing { background: #fff3c4; }
tr.diverged td { background: #fff0e0; } tr.failed td { background: #fadcdc; }
.badge { font-weight: bold; text-transform: uppercase; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .85em; color: #555; }
.note { color: #555; font-size: .9em; }
"""


def _table(header: list[str], rows: list[list[str]], row_classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for index, row in enumerate(rows):
        css = f' class="{row_classes[index]}"' if row_classes else ""
        cells = "".join(
            f'<td class="num">{escape(c)}</td>' if c[:1].isdigit() or c[:1] == "-" else
            f"<td>{escape(c)}</td>" for c in row
        )
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _scoreboard(content: ReportContent) -> str:
    if not content.claims:
        return '<p class="note">This sweep declares no claims.</p>'
    rows = []
    for claim in content.claims:
        note = escape(claim.detail) if claim.detail else ""
        rows.append(
            f'<tr class="{claim.status}"><td class="badge">{claim.status}</td>'
            f"<td>{escape(claim.statement)}</td><td><code>{escape(claim.expectation)}</code></td>"
            f'<td class="num">{escape(claim.measured_text)}</td>'
            f'<td class="num">{claim.runs_used}</td><td>{note}</td></tr>'
        )
    head = "".join(f"<th>{h}</th>" for h in
                   ("result", "lecture claim", "test", "measured", "runs", "note"))
    return (f"<p>{escape(content.claim_counts())}</p><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def render_html(content: ReportContent) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(content.title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(content.title)}</h1>",
        '<h2 id="claims">Claim scoreboard</h2>',
        _scoreboard(content),
        '<h2 id="summary">Summary</h2>',
        _table(content.table_header, content.table_rows, content.row_classes),
        '<p class="note">Seeds aggregated as mean ± standard deviation. '
        'All results: <a href="results.csv">results.csv</a> · text version: '
        '<a href="report.md">report.md</a></p>',
    ]
    parts += [f'<p class="note">{escape(note)}</p>' for note in content.notes]
    section = None
    for figure in content.figures:
        if figure.section != section:
            section = figure.section
            parts.append(f"<h2>{escape(section)}</h2>")
        parts.append(
            f'<figure><img src="{escape(figure.filename)}" alt="{escape(figure.caption)}">'
            f"<figcaption>{escape(figure.caption)}</figcaption></figure>"
        )
    if content.failures:
        parts.append("<h2>Failed runs</h2>")
        parts.append(_table(["run", "error"], [list(f) for f in content.failures]))
    parts.append('<h2 id="environment">Environment</h2>')
    parts.append(_table(["", ""], [list(item) for item in content.environment]))
    if content.problems:
        parts.append("<h2>Unreadable files</h2><ul>")
        parts += [f"<li>{escape(p)}</li>" for p in content.problems]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)
