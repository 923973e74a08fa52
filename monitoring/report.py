"""The drift report as one HTML page: what people open from S3 to see why a model drifted.

`render_html` takes `DriftReport.to_dict()` -- the JSON form, so a report stored as JSON renders
the same as a fresh one -- and returns a self-contained HTML5 document: inline CSS, inline SVG
charts (`monitoring._svg`), no script, no external fonts or images, and a Content-Security-Policy
that forbids loading anything, so the page works offline and cannot be made to run code. Every
text that comes from data (model, feature and category names, context values) is escaped.

The page: a header (model, version, overall status, window counts, thresholds, when it was
generated, and caller-supplied context such as the window's dates or the package ARN); a summary
of every column, worst PSI first (columns without a PSI last); then one section per feature and
one for the score with baseline and window shares side by side per bin. The output depends only
on its arguments: pass `generated_at` and the same report gives the same bytes.

`report_key` is where the page is stored: `<prefix><model>/dt=<end day>/report.html`, one per
window end day (a `run_id` keeps several runs of one day apart).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from html import escape
from typing import Any

from monitoring._svg import Series, bar_chart, compact, edge_labels
from monitoring.drift import Status

__all__ = ["render_html", "report_key"]

_MODEL_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # a model package group name
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_STATUSES = {s.value for s in Status}
_NOTES = {
    Status.INSUFFICIENT_ROWS.value: "Too few usable values for a PSI worth reading ({} needed).",
    Status.MISSING_FEATURE.value: "No record of the window carries this column.",
    Status.EMPTY_WINDOW.value: "The window holds no record of this model (and version).",
}
_NONE = "—"
_CSS = """\
:root{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328}
body{margin:0 auto;max-width:1000px;padding:24px;line-height:1.45;background:#fff}
h1{font-size:1.6rem;margin:0 0 .75rem}h2{margin-top:2rem;border-bottom:1px solid #d0d7de}
h3{margin:1.5rem 0 .25rem}table{border-collapse:collapse;margin:.5rem 0}
th,td{padding:4px 10px;text-align:left;border-bottom:1px solid #eaeef2;vertical-align:top}
.num{text-align:right;font-variant-numeric:tabular-nums}.note,.kind{color:#57606a}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-size:.85em;
font-weight:600;color:#fff}.status-ok{background:#1a7f37}.status-warn{background:#9a6700}
.status-act{background:#cf222e}.status-insufficient_rows{background:#6e7781}
.status-missing_feature{background:#0969da}.status-empty_window{background:#57606a}
svg.chart{display:block;max-width:100%;height:auto}svg text{font-size:11px;fill:#57606a}
.bar.baseline,.swatch.baseline{fill:#afb8c1}.bar.window,.swatch.window{fill:#0969da}
.axis{stroke:#57606a}.grid{stroke:#eaeef2}"""


@dataclass(frozen=True)
class _Column:
    name: str
    kind: str
    status: str
    psi: float | None
    rows: int
    missing: int
    missing_share: float | None
    invalid: int
    absent: int
    labels: tuple[str, ...]
    baseline: tuple[float, ...]
    window: tuple[float, ...]


def render_html(
    report: Mapping[str, Any],
    *,
    title: str | None = None,
    generated_at: datetime | None = None,
    context: Mapping[str, str] | None = None,
) -> str:
    """The report as one HTML5 document (see the module doc).

    `generated_at` defaults to now; a naive datetime is taken as UTC. `context` rows are shown
    in the header in their order. Raises `ValueError` naming the first missing or malformed key.
    """
    model = _text(_get(report, "model", ""), "model")
    version = _version(_get(report, "version", ""))
    stamp = datetime.now(UTC) if generated_at is None else generated_at
    stamp = stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
    header = _header(report, model, version, _iso(stamp), context or {})
    features = _get(report, "features", "")
    if not isinstance(features, Mapping):
        raise ValueError("drift report: features must be an object")
    columns = [_column(spec, f"features.{name}") for name, spec in features.items()]
    columns.append(_column(_get(report, "score", ""), "score"))
    min_rows = _count(report["thresholds"]["min_rows"], "thresholds.min_rows")  # checked above
    sections = [_section(i, c, i == len(columns) - 1, min_rows) for i, c in enumerate(columns)]
    heading = title or f"Drift report: {model} {version}"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta http-equiv="Content-Security-Policy" '
            "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(heading)}</title>",
            f"<style>\n{_CSS}\n</style>",
            "</head>",
            "<body>",
            f"<header>\n<h1>{escape(heading)}</h1>\n{header}\n</header>",
            "<main>",
            _summary(columns),
            f'<h2 id="features">Features ({len(columns) - 1})</h2>',
            *sections[:-1],
            '<h2 id="score">Score</h2>',
            sections[-1],
            "</main>",
            f"<footer>\n{_legend()}\n</footer>",
            "</body>",
            "</html>",
            "",
        ]
    )


def report_key(prefix: str, model: str, end: date, run_id: str | None = None) -> str:
    """The S3 key of a window's report: `<prefix><model>/dt=YYYY-MM-DD/[<run_id>/]report.html`.

    `prefix` is empty or ends with "/" (e.g. "drift-reports/"); `model` must be a model
    package group name and `run_id` a plain token, so a key never escapes its partition.
    """
    if prefix.startswith("/") or (prefix and not prefix.endswith("/")):
        raise ValueError(f"prefix must be empty or end with '/' (not start with it): {prefix!r}")
    if not _MODEL_NAME.fullmatch(model):
        raise ValueError(f"not a model name (letters, digits, '-', up to 63): {model!r}")
    if run_id is not None and not _RUN_ID.fullmatch(run_id):
        raise ValueError(f"run_id must be letters, digits, '.', '_' or '-': {run_id!r}")
    run = "" if run_id is None else f"{run_id}/"
    return f"{prefix}{model}/dt={end:%Y-%m-%d}/{run}report.html"


def _get(raw: Any, key: str, where: str) -> Any:
    path = f"{where}.{key}" if where else key
    if not isinstance(raw, Mapping):
        raise ValueError(f"drift report: {where or 'the report'} must be an object")
    if key not in raw:
        raise ValueError(f"drift report: missing key {path!r}")
    return raw[key]


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"drift report: {path} must be a non-empty string, got {value!r}")
    return value


def _count(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"drift report: {path} must be a count, got {value!r}")
    return value


def _number(value: Any, path: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"drift report: {path} must be a finite number or null, got {value!r}")
    return float(value)


def _finite(value: Any, path: str) -> float:
    number = _number(value, path)
    if number is None:
        raise ValueError(f"drift report: {path} must be a finite number, got null")
    return number


def _status(value: Any, path: str) -> str:
    if value not in _STATUSES:
        raise ValueError(f"drift report: {path} must be one of {sorted(_STATUSES)}: {value!r}")
    return str(value)


def _shares(value: Any, path: str, length: int) -> tuple[float, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != length:
        raise ValueError(f"drift report: {path} must be a list of {length} shares")
    shares = tuple(_finite(v, f"{path}[{i}]") for i, v in enumerate(value))
    if any(not 0 <= s <= 1 for s in shares):
        raise ValueError(f"drift report: {path} must hold shares in [0, 1]")
    return shares


def _labels(raw: Mapping[str, Any], kind: str, path: str) -> tuple[str, ...]:
    if kind == "numeric":
        edges = _get(raw, "edges", path)
        if not isinstance(edges, Sequence) or isinstance(edges, str):
            raise ValueError(f"drift report: {path}.edges must be a list of numbers")
        return tuple(edge_labels([_finite(e, f"{path}.edges[{i}]") for i, e in enumerate(edges)]))
    if kind == "categorical":
        categories = _get(raw, "categories", path)
        if not isinstance(categories, Sequence) or isinstance(categories, str):
            raise ValueError(f"drift report: {path}.categories must be a list of strings")
        return (*(_text(c, f"{path}.categories") for c in categories), "other", "missing")
    raise ValueError(f"drift report: {path}.kind must be numeric or categorical, got {kind!r}")


def _column(raw: Any, path: str) -> _Column:
    def field(key: str) -> Any:
        return _get(raw, key, path)

    def shares(key: str) -> tuple[float, ...]:
        return _shares(field(key), f"{path}.{key}", len(labels))

    labels = _labels(raw, _text(field("kind"), f"{path}.kind"), path)
    return _Column(
        name=_text(field("name"), f"{path}.name"),
        kind=str(field("kind")),
        status=_status(field("status"), f"{path}.status"),
        psi=_number(field("psi"), f"{path}.psi"),
        rows=_count(field("rows"), f"{path}.rows"),
        missing=_count(field("missing"), f"{path}.missing"),
        missing_share=_number(field("missing_share"), f"{path}.missing_share"),
        invalid=_count(field("invalid"), f"{path}.invalid"),
        absent=_count(field("absent"), f"{path}.absent"),
        labels=labels,
        baseline=shares("baseline_proportions"),
        window=shares("window_proportions"),
    )


def _version(value: Any) -> str:
    if value is None:
        return "(all versions)"
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"drift report: version must be a string or null, got {value!r}")
    return f"v{value}"


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(value: Any, path: str) -> str:
    stamp = _number(value, path)
    if stamp is None:
        return _NONE
    try:
        return _iso(datetime.fromtimestamp(stamp, UTC))
    except (OverflowError, OSError, ValueError):
        return compact(stamp)


def _badge(status: str) -> str:
    return f'<span class="badge status-{status}">{escape(status)}</span>'


def _row(label: str, value_html: str) -> str:
    return f'<tr><th scope="row">{escape(label)}</th><td>{value_html}</td></tr>'


def _header(
    report: Mapping[str, Any], model: str, version: str, generated: str, context: Mapping[str, str]
) -> str:
    window, limits = _get(report, "window", ""), _get(report, "thresholds", "")
    baseline = _get(report, "baseline", "")

    def count(key: str) -> int:
        return _count(_get(window, key, "window"), f"window.{key}")

    records = f"{count('records')} used · {count('skipped')} skipped (other model or version) · "
    outside = _count(window.get("outside_window") or 0, "window.outside_window")
    records += f"{outside} outside the window's time range · " if outside else ""
    rows = [
        _row("Model", escape(model)),
        _row("Version", escape(version)),
        _row("Status", _badge(_status(_get(report, "status", ""), "status"))),
        _row("Records", f"{records}{count('malformed_records')} malformed"),
    ]
    if window.get("lines") is not None:
        lines = [_count(window.get(k) or 0, f"window.{k}") for k in ("lines", "malformed_lines")]
        broken = _count(window.get("broken_sources") or 0, "window.broken_sources")
        rows.append(_row("Log lines", f"{lines[0]} read · {lines[1]} malformed · "
                         f"{broken} unreadable object(s)"))  # fmt: skip
    rows += [
        _row("First record", _when(_get(window, "first_ts", "window"), "window.first_ts")),
        _row("Last record", _when(_get(window, "last_ts", "window"), "window.last_ts")),
        _row("Thresholds", _thresholds(limits)),
        _row("Baseline", escape(_baseline(baseline))),
        _row("Generated", generated),
        *(_row(str(key), escape(str(value))) for key, value in context.items()),
    ]
    return '<table class="facts">\n<tbody>\n' + "\n".join(rows) + "\n</tbody>\n</table>"


def _thresholds(limits: Any) -> str:
    warn = _finite(_get(limits, "warn", "thresholds"), "thresholds.warn")
    act = _finite(_get(limits, "act", "thresholds"), "thresholds.act")
    rows = _count(_get(limits, "min_rows", "thresholds"), "thresholds.min_rows")
    return f"warn at PSI ≥ {compact(warn)} · act at PSI ≥ {compact(act)} · min rows {rows}"


def _baseline(baseline: Any) -> str:
    rows = _count(_get(baseline, "rows", "baseline"), "baseline.rows")
    source = _get(baseline, "source", "baseline")
    return f"{rows} rows ({source})" if source else f"{rows} rows"


def _psi(value: float | None) -> str:
    return _NONE if value is None else f"{value:.4f}"


def _share(value: float | None) -> str:
    return _NONE if value is None else f"{value:.1%}"


def _summary(columns: Sequence[_Column]) -> str:
    order = sorted(
        range(len(columns)),
        key=lambda i: (columns[i].psi is None, -(columns[i].psi or 0.0)),
    )
    rows = []
    for index in order:
        column = columns[index]
        name = escape(column.name) + (" (score)" if index == len(columns) - 1 else "")
        rows.append(
            f'<tr><td><a href="#col-{index}">{name}</a></td>'
            f'<td class="num">{_psi(column.psi)}</td><td>{_badge(column.status)}</td>'
            f'<td class="num">{column.rows}</td>'
            f'<td class="num">{_share(column.missing_share)}</td></tr>'
        )
    return "\n".join(
        [
            '<section id="summary">',
            "<h2>Columns, worst PSI first</h2>",
            '<table class="summary">',
            '<thead><tr><th scope="col">Column</th><th scope="col" class="num">PSI</th>'
            '<th scope="col">Status</th><th scope="col" class="num">Rows</th>'
            '<th scope="col" class="num">Missing</th></tr></thead>',
            "<tbody>",
            *rows,
            "</tbody>",
            "</table>",
            "</section>",
        ]
    )


def _section(index: int, column: _Column, score: bool, min_rows: int) -> str:
    role = "score" if score else f"{column.kind} feature"
    facts = (
        f"PSI {_psi(column.psi)} · {column.rows} rows · missing {column.missing} "
        f"({_share(column.missing_share)}) · invalid {column.invalid} · absent {column.absent}"
    )
    note = _NOTES.get(column.status, "").format(min_rows)
    chart = bar_chart(
        f"{column.name}: baseline and window share per bin ({len(column.labels)} bins)",
        column.labels,
        (
            Series("baseline", "baseline", column.baseline),
            Series("window", "window", column.window),
        ),
    )
    table = "\n".join(
        f'<tr><th scope="row">{escape(label)}</th><td class="num">{b:.2%}</td>'
        f'<td class="num">{w:.2%}</td></tr>'
        for label, b, w in zip(column.labels, column.baseline, column.window, strict=True)
    )
    return "\n".join(
        [
            f'<section class="column" id="col-{index}">',
            f'<h3>{escape(column.name)} <span class="kind">{role}</span> '
            f"{_badge(column.status)}</h3>",
            f'<p class="facts">{facts}</p>',
            *([f'<p class="note">{escape(note)}</p>'] if note else []),
            chart,
            "<details><summary>Shares per bin</summary>",
            '<table><thead><tr><th scope="col">Bin</th><th scope="col" class="num">Baseline</th>'
            '<th scope="col" class="num">Window</th></tr></thead>',
            f"<tbody>\n{table}\n</tbody></table></details>",
            "</section>",
        ]
    )


def _legend() -> str:
    return (
        '<p class="note">PSI: <span class="badge status-ok">ok</span> below warn, '
        '<span class="badge status-warn">warn</span> from warn, '
        '<span class="badge status-act">act</span> from act. Data problems rank above drift '
        "and report no PSI: "
        '<span class="badge status-insufficient_rows">insufficient_rows</span> '
        '<span class="badge status-missing_feature">missing_feature</span> '
        '<span class="badge status-empty_window">empty_window</span>. Numeric bins are '
        "right-closed (a–b holds a &lt; x ≤ b), edges fixed on the training data.</p>"
    )
