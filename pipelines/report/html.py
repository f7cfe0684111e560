"""``index.html``: the zoo at a glance, one static self-contained page (no script, no network).

A table of models (rows) x target names (columns); each cell carries the target's status as a
class (``passed``/``failed``/``not_built``; ``absent`` where the model has no such target), links
to the artifact files and to ``verify.json`` (relative, so the build tree can be moved or
served as is) only where they are this build's, sizes, the worst absolute error per output,
latency and conversion time. A failed cell names the failing stage and its error; an invalid
recipe is one row whose cell spans the table and lists its errors.
"""

from __future__ import annotations

from html import escape

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d2329; }
h1 { font-size: 1.4em; margin: 0 0 .3em; }
.summary span { font-weight: 600; margin-right: .8em; }
table { border-collapse: collapse; margin-top: 1em; }
th, td { border: 1px solid #c9d0d6; padding: .45em .6em; vertical-align: top; text-align: left; }
thead th { background: #eef1f4; }
th.model { max-width: 22em; font-weight: normal; }
th.model .id { font-weight: 600; font-family: ui-monospace, monospace; }
.task { color: #55606b; font-size: .85em; }
.desc { color: #55606b; font-size: .8em; margin-top: .2em; }
td.cell { min-width: 13em; font-size: .85em; }
td.passed { background: #e8f5ec; }
td.failed { background: #fce8e6; }
td.not_built { background: #fdf3dc; }
td.absent { background: #f6f7f8; color: #9aa3ab; text-align: center; }
.badge { display: inline-block; font-weight: 700; font-size: .8em; padding: .1em .5em;
         border-radius: .3em; color: #fff; text-decoration: none; }
td.passed .badge, .summary .passed { background: #1e7e34; }
td.failed .badge, .summary .failed { background: #c62828; }
td.not_built .badge, .summary .not_built { background: #b26a00; }
.summary span.zero { background: #9aa3ab; }
.summary span { color: #fff; padding: .1em .5em; border-radius: .3em; }
.msg { color: #8c1d18; margin-top: .3em; word-break: break-word; }
td.not_built .msg { color: #6b4500; }
.err td, .err th { border: none; padding: 0 .6em 0 0; font-family: ui-monospace, monospace; }
.files a, .err { font-family: ui-monospace, monospace; }
.err { margin: .3em 0; }
.err caption { text-align: left; white-space: nowrap; color: #55606b; font-family: system-ui, sans-serif; }
.err tr.bad { color: #c62828; font-weight: 600; }
"""


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def _num(x) -> str:
    return f"{x:.3g}" if isinstance(x, int | float) else escape(str(x))


def _cell(t: dict | None, prefix: str) -> str:
    if t is None:
        return '<td class="cell absent" data-status="absent">&#8212;</td>'
    status = t["status"]
    label = {"passed": "PASS", "failed": "FAIL"}.get(status, "NOT BUILT")
    if status == "failed" and t.get("stage") not in (None, "verify"):
        label += f" at {t['stage']}"
    badge = (
        f'<a class="badge" href="{escape(prefix)}/{escape(t["verify_json"])}">{label}</a>'
        if t["verify_json"]
        else f'<span class="badge">{label}</span>'
    )
    parts = [badge, f" {escape(t['format'])} &#183; {escape(t['precision'])}"]
    files = " ".join(
        f'<a href="{escape(prefix)}/{escape(f["path"])}">{escape(f["path"].rsplit("/", 1)[-1])}</a>'
        f" {_size(f['bytes'])}"
        for f in t["files"]
    )
    parts.append(f'<div class="files">{files or "no current artifact"}</div>')
    if t["worst_error"]:
        bad = set(t.get("failed_outputs") or ())
        rows = "".join(
            f'<tr class="{"bad" if k in bad else "ok"}"><th>{escape(k)}</th><td>{_num(v)}</td></tr>'
            for k, v in t["worst_error"].items()
        )
        parts.append(f'<table class="err"><caption>max abs error</caption>{rows}</table>')
    facts = []
    if t.get("reference"):
        facts.append(f'<span class="reference">vs {escape(t["reference"])}</span>')
    if t["latency_ms"] is not None:
        facts.append(f'<span class="latency">latency {_num(t["latency_ms"])} ms</span>')
    if t["conversion_seconds"] is not None:
        facts.append(f'<span class="conversion">built in {_num(t["conversion_seconds"])} s</span>')
    if facts:
        parts.append(f'<div class="facts">{" &#183; ".join(facts)}</div>')
    if t["message"]:
        parts.append(f'<div class="msg">{escape(t["message"])}</div>')
    return (
        f'<td class="cell {status}" data-target="{escape(t["name"])}" '
        f'data-status="{status}">{"".join(parts)}</td>'
    )


def render_html(report: dict, prefix: str) -> str:
    """The page for ``report`` (``build_report``'s dict); ``prefix``: build dir from the page."""
    columns: list[str] = []
    for model in report["models"]:
        if not model.get("errors"):
            columns += [t["name"] for t in model["targets"] if t["name"] not in columns]
    head = "".join(f'<th scope="col">{escape(c)}</th>' for c in columns)
    rows = []
    for model in report["models"]:
        by_name = {t["name"]: t for t in model["targets"]}
        mid = escape(model["id"])
        if model.get("errors"):
            lines = "".join(f'<div class="msg">{escape(e)}</div>' for e in model["errors"])
            cells = (
                f'<td class="cell failed" colspan="{max(len(columns), 1)}" data-target="recipe" '
                f'data-status="failed"><span class="badge">FAIL at recipe</span>{lines}</td>'
            )
        else:
            cells = "".join(_cell(by_name.get(c), prefix) for c in columns)
        rows.append(
            f'<tr id="model-{mid}" data-model="{mid}"><th scope="row" class="model">'
            f'<div class="id">{mid}</div><div class="task">{escape(str(model["task"]))}</div>'
            f'<div class="desc">{escape(model["description"])}</div></th>' + cells + "</tr>"
        )
    s = report["summary"]
    counts = "".join(
        f'<span class="{k}{" zero" if not s[k] else ""}">{s[k]} {k.replace("_", " ")}</span>'
        for k in ("passed", "failed", "not_built")
    )
    summary = f'<p class="summary">{s["targets"]} targets: {counts}</p>'
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>zoomake report</title>
<style>{STYLE}</style>
</head>
<body>
<h1>zoomake model zoo</h1>
{summary}
<table id="zoo">
<thead><tr><th scope="col">model</th>{head}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
<p class="task">Each cell: verification status (links to verify.json), artifact files and sizes,
worst absolute error per output against the source model, median latency of the artifact in its
deployment runtime and total conversion time.</p>
</body>
</html>
"""
