"""``index.html``: the zoo at a glance, one self-contained page (no network, no library).

What a maintainer asks first comes first: a summary strip (passed / failed / not built /
changed since the baseline), then the problems (failures, drift against the baseline, targets
not built, targets gone), each linking to its cell, then the full table of models (rows) x
target names (columns), then the provenance of the build. A filter box (a few lines of plain
script in the page) hides the models whose id or text does not match.

Each cell carries the target's status as a class (``passed``/``failed``/``not_built``;
``absent`` where the model has no such target), links to the artifact files and to
``verify.json`` (relative, so the build tree can be moved or served) only where they are this
build's, sizes, and per output its margin: the worst error over what the tolerance allowed
there (a bar, red past 1), the cosine similarity and the elements out of tolerance (top-k
agreement for classifiers); latency with the runtime's thread count, conversion time, the
first diverging layer of a failure, the drift against the baseline and sparklines of the last
runs' margin and latency (inline SVG). An invalid recipe is one row whose cell spans the table.
"""

from __future__ import annotations

from html import escape

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.2em 1.5em; color: #1d2329; }
h1 { font-size: 1.4em; margin: 0 0 .2em; }
h2 { font-size: 1.1em; margin: 1.2em 0 .4em; }
.prov-line { color: #55606b; font-size: .85em; }
.prov-line code { font-size: .95em; }
.strip { display: flex; gap: .6em; align-items: center; margin: .8em 0; flex-wrap: wrap; }
.strip .count { color: #fff; padding: .25em .7em; border-radius: .3em; font-weight: 600;
                text-decoration: none; }
.count.passed { background: #1e7e34; } .count.failed { background: #c62828; }
.count.not_built { background: #b26a00; } .count.changed { background: #6a3fb5; }
.count.zero { background: #9aa3ab; }
#filter { margin-left: auto; padding: .3em .5em; min-width: 16em; font: inherit; }
#problems ol { margin: 0; padding-left: 1.4em; }
#problems li { margin: .25em 0; }
#problems li .what { font-family: ui-monospace, monospace; font-weight: 600; }
#problems li .detail { color: #55606b; font-size: .9em; word-break: break-word; }
#problems .none { color: #1e7e34; }
table { border-collapse: collapse; }
#zoo { margin-top: .4em; }
th, td { border: 1px solid #c9d0d6; padding: .45em .6em; vertical-align: top; text-align: left; }
thead th { background: #eef1f4; }
th.model { max-width: 20em; font-weight: normal; }
th.model .id { font-weight: 600; font-family: ui-monospace, monospace; }
.task { color: #55606b; font-size: .85em; }
.desc { color: #55606b; font-size: .8em; margin-top: .2em; }
td.cell { min-width: 15em; font-size: .85em; }
td.passed { background: #e8f5ec; }
td.failed { background: #fce8e6; }
td.not_built { background: #fdf3dc; }
td.absent { background: #f6f7f8; color: #9aa3ab; text-align: center; }
td.cell:target { outline: 3px solid #1d2329; }
.badge { display: inline-block; font-weight: 700; font-size: .8em; padding: .1em .5em;
         border-radius: .3em; color: #fff; text-decoration: none; }
.passed .badge, li.passed .badge { background: #1e7e34; }
.failed .badge, li.failed .badge { background: #c62828; }
.not_built .badge, li.not_built .badge { background: #b26a00; }
li.changed .badge, li.gone .badge { background: #6a3fb5; }
.msg { color: #8c1d18; margin-top: .3em; word-break: break-word; }
.diverge { color: #8c1d18; margin-top: .3em; font-weight: 600; }
td.not_built .msg { color: #6b4500; }
.files a, .err td, .mono { font-family: ui-monospace, monospace; }
table.err { margin: .35em 0; font-size: .95em; }
.err td, .err th { border: none; padding: 0 .5em 0 0; white-space: nowrap; }
.err thead th { background: none; color: #55606b; font-weight: normal; font-size: .9em; }
.err tr.bad { color: #c62828; font-weight: 600; }
.bar { display: inline-block; width: 4em; height: .6em; background: #dfe4e8;
       border-radius: .3em; overflow: hidden; vertical-align: middle; }
.bar span { display: block; height: 100%; background: #2e7d32; }
.bar.warn span { background: #e0a800; } .bar.over span { background: #c62828; }
.baseline { margin-top: .3em; }
.baseline.changed { color: #6a3fb5; font-weight: 600; }
.baseline .why { font-weight: normal; color: #55606b; }
.spark { vertical-align: middle; margin-right: .6em; }
.spark polyline { fill: none; stroke: #4a5a6a; stroke-width: 1.3; }
.spark circle { fill: #c62828; }
details.prov { margin-top: .3em; color: #55606b; }
details.prov dl { display: grid; grid-template-columns: auto 1fr; gap: 0 .6em; margin: .2em 0; }
details.prov dt { font-weight: 600; } details.prov dd { margin: 0; font-family: ui-monospace, monospace; }
#provenance th { background: #eef1f4; font-weight: 600; }
#provenance td { font-family: ui-monospace, monospace; }
"""

# Plain script, no library: hide rows and problems whose model id and text miss the query.
SCRIPT = """{
const box = document.getElementById("filter");
box.addEventListener("input", () => {
  const q = box.value.trim().toLowerCase();
  for (const el of document.querySelectorAll("[data-model]")) {
    const hit = !q || el.dataset.model.toLowerCase().includes(q)
      || el.textContent.toLowerCase().includes(q);
    el.hidden = !hit;
  }
});
}"""


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def _num(x) -> str:
    return f"{x:.3g}" if isinstance(x, int | float) else escape(str(x))


def _anchor(model_id: str, target: str) -> str:
    return escape(f"cell-{model_id}-{target}")


def _ratio(m) -> float | None:
    if isinstance(m, int | float):
        return float(m)
    return float("inf") if m in ("inf", "nan") else None


def _bar(margin) -> str:
    r = _ratio(margin)
    if r is None:
        return ""
    kind = "over" if r > 1 else "warn" if r > 0.5 else "ok"
    width = 100 if r > 1 else round(100 * r)
    return f'<span class="bar {kind}" title="worst error / allowed"><span style="width:{width}%"></span></span>'


def _margins(t: dict) -> str:
    margins = t.get("margins") or {}
    if not margins:
        return ""
    rows = []
    for name, m in margins.items():
        topk = m.get("topk")
        extra = f" top-{topk['k']} {_num(topk['exact_agreement'])}" if topk else ""
        failing = m.get("failing_elements")
        count = f"{failing}/{m.get('elements')}" if failing is not None else "&#8212;"
        rows.append(
            f'<tr class="{"ok" if m.get("passed") else "bad"}" data-output="{escape(name)}" '
            f'data-margin="{escape(str(m.get("margin")))}"><th>{escape(name)}</th>'
            f"<td>{_num(m.get('max_abs_error'))}</td>"
            f'<td class="margin">{_bar(m.get("margin"))} {_num(m.get("margin"))}</td>'
            f'<td class="cosine">{_num(m.get("cosine_similarity"))}</td>'
            f'<td class="outside">{count}{extra}</td></tr>'
        )
    return (
        '<table class="err"><thead><tr><th>output</th><th>max err</th><th>err/allowed</th>'
        f"<th>cosine</th><th>out of tol</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _spark(values: list, label: str) -> str:
    points = [(i, _ratio(v)) for i, v in enumerate(values or [])]
    points = [(i, v) for i, v in points if v is not None and v != float("inf")]
    if len(points) < 2:
        return ""
    w, h = 80, 18
    lo, hi = min(v for _, v in points), max(v for _, v in points)
    span = (hi - lo) or 1.0
    n = max(len(values) - 1, 1)
    xy = [(round(i * w / n, 1), round(h - 2 - (v - lo) / span * (h - 4), 1)) for i, v in points]
    line = " ".join(f"{x},{y}" for x, y in xy)
    x, y = xy[-1]
    return (
        f'<svg class="spark" data-series="{label}" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img"><title>{label}, last {len(values)} runs: '
        f'{escape(", ".join(_num(v) for _, v in points))}</title><polyline points="{line}"/>'
        f'<circle cx="{x}" cy="{y}" r="2"/></svg>'
    )


def _baseline_text(b: dict | None) -> str:
    if not b:
        return ""
    status = b["status"]
    if status == "changed":
        by = b.get("max_abs_change")
        text = f"changed by {_num(by)}" if by is not None else "changed"
        if b.get("message"):
            text += f' <span class="why">({escape(b["message"])})</span>'
        return text
    if status == "unchanged" and b.get("max_abs_change"):
        return f"unchanged (max change {_num(b['max_abs_change'])})"
    return status.replace("_", " ")


def _provenance_details(t: dict) -> str:
    items = []
    for f in t["files"]:
        items.append((f["path"].rsplit("/", 1)[-1], _size(f["bytes"])))
    if t.get("size_ratio_fp32") is not None:
        items.append(("fp16/fp32 size", f"{t['size_ratio_fp32']:.3f}"))
    if t.get("latency_threads"):
        items.append(("threads", str(t["latency_threads"])))
    for kind, files in (t.get("digests") or {}).items():
        for name, digest in files.items():
            items.append(
                (f"{kind} {name}", f'<span title="{escape(digest)}">{escape(digest[:12])}</span>')
            )
    if not items:
        return ""
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in items)
    return f'<details class="prov"><summary>provenance</summary><dl>{dl}</dl></details>'


def _cell(model_id: str, t: dict | None, prefix: str) -> str:
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
    parts.append(_margins(t))
    facts = []
    if t.get("reference"):
        version = f" {t['reference_version']}" if t.get("reference_version") else ""
        facts.append(f'<span class="reference">vs {escape(t["reference"] + version)}</span>')
    if t["latency_ms"] is not None:
        detail = []
        if t.get("latency_ci95_ms"):
            lo, hi = t["latency_ci95_ms"]
            detail.append(f"95% {_num(lo)}&#8211;{_num(hi)}")
        if t.get("latency_runs"):
            detail.append(f"{t['latency_runs']} runs")
        if t.get("latency_threads"):
            detail.append(f"{t['latency_threads']} threads")
        detail_s = f" ({', '.join(detail)})" if detail else ""
        facts.append(f'<span class="latency">latency {_num(t["latency_ms"])} ms{detail_s}</span>')
    if t["conversion_seconds"] is not None:
        facts.append(f'<span class="conversion">built in {_num(t["conversion_seconds"])} s</span>')
    if t.get("size_ratio_fp32") is not None:
        facts.append(f'<span class="ratio">{t["size_ratio_fp32"]:.2f}&#215; fp32 size</span>')
    if facts:
        parts.append(f'<div class="facts">{" &#183; ".join(facts)}</div>')
    d = t.get("first_divergence")
    if d and d.get("message"):
        parts.append(f'<div class="diverge">{escape(d["message"])}</div>')
    lines = [ln for ln in (t["message"] or "").split("; ") if not ln.startswith("first divergence")]
    if any(lines):  # the divergence has its own line above
        parts.append(f'<div class="msg">{escape("; ".join(lines))}</div>')
    b = t.get("baseline")
    if b:
        parts.append(
            f'<div class="baseline {escape(b["status"])}" data-baseline="{escape(b["status"])}">'
            f"vs baseline: {_baseline_text(b)}</div>"
        )
    hist = t.get("history") or {}
    sparks = _spark(hist.get("margin"), "margin") + _spark(hist.get("latency_ms"), "latency")
    if sparks:
        parts.append(
            f'<div class="history"><span class="task">last runs: err/allowed, latency</span> {sparks}</div>'
        )
    parts.append(_provenance_details(t))
    return (
        f'<td class="cell {status}" id="{_anchor(model_id, t["name"])}" '
        f'data-target="{escape(t["name"])}" data-status="{status}">{"".join(parts)}</td>'
    )


def _worst_margin(t: dict):
    values = [_ratio(m.get("margin")) for m in (t.get("margins") or {}).values()]
    values = [v for v in values if v is not None]
    return max(values) if values else None


def problems(report: dict) -> list[dict]:
    """What needs a look, most urgent first: failures, drift, not built, gone."""
    found = []
    rank = {"failed": 0, "changed": 1, "not_built": 2, "gone": 3}
    for model in report["models"]:
        for t in model["targets"]:
            b = (t.get("baseline") or {}).get("status")
            kind = t["status"] if t["status"] != "passed" else "changed" if b == "changed" else None
            if kind is None:
                continue
            found.append({"kind": kind, "model": model["id"], "target": t["name"], "t": t})
    for tag in (report.get("baseline") or {}).get("gone") or []:
        model_id, _, target = tag.partition(":")
        found.append({"kind": "gone", "model": model_id, "target": target, "t": None})
    return sorted(found, key=lambda p: (rank[p["kind"]], p["model"], p["target"]))


def _problem_item(p: dict) -> str:
    t, kind = p["t"], p["kind"]
    label = {"failed": "FAIL", "changed": "DRIFT", "not_built": "NOT BUILT", "gone": "GONE"}[kind]
    what = escape(f"{p['model']} · {p['target']}")
    details = []
    if t is None:
        details.append("in the baseline, not in this zoo")
    else:
        if kind == "failed" and t.get("stage"):
            details.append(f"at {escape(t['stage'])}")
        worst = _worst_margin(t)
        if worst is not None:
            details.append(f'<span class="margin">worst error/allowed {_num(worst)}</span>')
        d = t.get("first_divergence")
        if d and d.get("found"):
            details.append(f'<span class="diverge">{escape(d["message"])}</span>')
        if kind == "changed":
            details.append(f"vs baseline: {_baseline_text(t['baseline'])}")
        elif t.get("message"):
            details.append(escape(t["message"].split("; ")[0]))
    link = (
        f'<a class="what" href="#{_anchor(p["model"], p["target"])}">{what}</a>'
        if t is not None
        else f'<span class="what">{what}</span>'
    )
    return (
        f'<li class="{kind}" id="problem-{escape(p["model"])}-{escape(p["target"])}" '
        f'data-model="{escape(p["model"])}" data-kind="{kind}"><span class="badge">{label}</span> '
        f'{link} <span class="detail">{" &#183; ".join(details)}</span></li>'
    )


def _provenance_table(report: dict) -> str:
    p = report.get("provenance") or {}
    git = (p.get("zoo") or {}).get("git")
    commit = "not a git work tree"
    if git:
        commit = escape(git["commit"][:12]) + (" (dirty)" if git["dirty"] else " (clean)")
    machine = p.get("machine") or {}
    rows = [
        ("started", escape(str(p.get("started")))),
        ("finished", escape(str(p.get("finished")))),
        ("zoo", f"{escape(str((p.get('zoo') or {}).get('path')))} @ {commit}"),
        ("zoomake", escape(str(p.get("zoomake")))),
        ("python", escape(str(p.get("python")))),
        *((k, escape(str(v))) for k, v in (p.get("libraries") or {}).items()),
        ("cpu", escape(f"{machine.get('cpu')} ({machine.get('cores')} cores)")),
        ("platform", escape(str(machine.get("platform")))),
    ]
    base = report.get("baseline")
    if base:
        rows.append(("baseline", escape(base["source"]) + (f" ({escape(base['error'])})"
                                                          if base.get("error") else "")))  # fmt: skip
    body = "".join(f'<tr data-field="{escape(k)}"><th>{escape(k)}</th><td>{v}</td></tr>'
                   for k, v in rows)  # fmt: skip
    return f'<section id="provenance"><h2>Provenance</h2><table>{body}</table></section>'


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
                f'<td class="cell failed" id="{_anchor(model["id"], "recipe")}" '
                f'colspan="{max(len(columns), 1)}" data-target="recipe" '
                f'data-status="failed"><span class="badge">FAIL at recipe</span>{lines}</td>'
            )
        else:
            cells = "".join(_cell(model["id"], by_name.get(c), prefix) for c in columns)
        rows.append(
            f'<tr id="model-{mid}" data-model="{mid}"><th scope="row" class="model">'
            f'<div class="id">{mid}</div><div class="task">{escape(str(model["task"]))}</div>'
            f'<div class="desc">{escape(model["description"])}</div></th>' + cells + "</tr>"
        )
    s = report["summary"]
    strip = [("passed", s["passed"]), ("failed", s["failed"]), ("not_built", s["not_built"])]
    if report.get("baseline"):
        strip.append(("changed", s.get("changed", 0)))
    counts = "".join(
        f'<a class="count {k}{" zero" if not n else ""}" data-count="{k}" href="#problems">'
        f"{n} {'changed since baseline' if k == 'changed' else k.replace('_', ' ')}</a>"
        for k, n in strip
    )
    found = problems(report)
    items = "".join(_problem_item(p) for p in found)
    problem_list = (
        f"<ol>{items}</ol>"
        if found
        else '<p class="none">Nothing to look at: every target passed.</p>'
    )
    p = report.get("provenance") or {}
    git = (p.get("zoo") or {}).get("git")
    commit = (
        f" &#183; zoo <code>{escape(git['commit'][:12])}</code>{' (dirty)' if git['dirty'] else ''}"
        if git
        else ""
    )
    prov_line = (
        f'<div class="prov-line">built {escape(str(p.get("finished")))}{commit} &#183; zoomake '
        f"{escape(str(p.get('zoomake')))} &#183; {escape(str((p.get('machine') or {}).get('cpu')))}"
        "</div>"
        if p
        else ""
    )
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
{prov_line}
<div class="strip" id="summary"><span>{s["targets"]} targets:</span>{counts}
<input id="filter" type="search" placeholder="filter models" aria-label="filter models"></div>
<section id="problems"><h2>Problems ({len(found)})</h2>{problem_list}</section>
<h2>All targets</h2>
<table id="zoo">
<thead><tr><th scope="col">model</th>{head}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody>
</table>
<p class="task">Each cell: verification status (links to verify.json), artifact files and sizes;
per output the worst absolute error against the source model, that error over what the
tolerance allowed there (atol + rtol &#183; |reference|; above 1 fails), the cosine similarity
and the elements out of tolerance; median latency of the artifact in its deployment runtime,
total conversion time, the drift against the baseline and the last runs' margin and latency.</p>
{_provenance_table(report)}
<script>{SCRIPT}</script>
</body>
</html>
"""
