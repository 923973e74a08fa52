"""The HTML drift report: parsed back with the stdlib parser and checked against the numbers."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest

from monitoring._svg import PLOT_HEIGHT, compact, edge_labels
from monitoring.drift import Status, compute_drift
from monitoring.psi import bin_proportions
from monitoring.report import render_html, report_key

pytestmark = pytest.mark.unit

MODEL = "credit-risk"
WHEN = datetime(2026, 11, 21, 6, 30, tzinfo=UTC)
VOID = {"meta", "link", "br", "hr", "img", "input"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def walk(self) -> Iterator[Node]:
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.walk()

    def find(self, tag: str, css: str | None = None) -> list[Node]:
        return [n for n in self.walk() if n.tag == tag and (css is None or css in n.classes)]

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)


class Tree(HTMLParser):
    """A strict tree builder: every end tag must close the innermost open element."""

    def __init__(self, document: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]
        self.feed(document)
        self.close()
        assert self.stack == [self.root], [n.tag for n in self.stack]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(document: str) -> Node:
    return Tree(document).root


def column(values: np.ndarray) -> dict[str, Any]:
    """A numeric baseline as the bundles fix it: 9 quantile edges, 11 shares (missing last)."""
    edges = np.quantile(values, np.linspace(0.1, 0.9, 9)).tolist()
    return {"edges": edges, "proportions": bin_proportions(values, edges).tolist()}


@pytest.fixture(scope="module")
def evaluation() -> dict[str, Any]:
    rng = np.random.default_rng(8)
    baselines = {
        "method": "quantile", "source": "train", "bins": 10, "rows": 20_000,
        "features": {
            "x": column(rng.normal(10.0, 2.0, 20_000)),
            "n": column(rng.poisson(1.0, 20_000).astype(np.float64)),  # repeated edges
            "channel": {"categories": ["app", "web"], "proportions": [0.6, 0.3, 0.06, 0.04]},
        },
        "score": column(rng.beta(2.0, 8.0, 20_000)),
    }  # fmt: skip
    return {"baselines": baselines}


def records(
    n: int, *, shift: float = 0.0, seed: int = 1, mix: tuple[float, ...] = (0.6, 0.3, 0.06, 0.04)
) -> list[dict[str, Any]]:
    """Log records of `MODEL`; `shift` moves `x`, `mix` the shares of app, web, kiosk, null."""
    rng = np.random.default_rng(seed)
    x, k, s = rng.normal(10.0 + shift, 2.0, n), rng.poisson(1.0, n), rng.beta(2.0, 8.0, n)
    channel = rng.choice(np.array(["app", "web", "kiosk", None]), n, p=mix).tolist()
    return [
        {"model": MODEL, "version": "3", "ts": 1_700_000_000.0 + i,
         "features": {"x": float(x[i]), "n": float(k[i]), "channel": channel[i]},
         "score": float(s[i])}
        for i in range(n)
    ]  # fmt: skip


@pytest.fixture(scope="module")
def drifted(evaluation: dict[str, Any]) -> dict[str, Any]:
    return compute_drift(records(2_000, shift=2.0), evaluation, model=MODEL).to_dict()


def columns_of(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [*report["features"].values(), report["score"]]


def bars(svg: Node, series: str) -> list[Node]:
    found = svg.find("rect", "bar")
    return [b for b in found if series in b.classes]


def header_rows(tree: Node) -> list[tuple[str, str]]:
    facts = tree.find("header")[0].find("table", "facts")[0]
    return [(row.find("th")[0].text, row.find("td")[0].text) for row in facts.find("tr")]


def summary_rows(tree: Node) -> list[list[str]]:
    body = tree.find("table", "summary")[0].find("tbody")[0]
    return [[td.text for td in row.find("td")] for row in body.find("tr")]


def test_one_chart_per_column_with_one_bar_per_bin_and_series(drifted: dict[str, Any]) -> None:
    svgs = parse(render_html(drifted, generated_at=WHEN)).find("svg")
    cols = columns_of(drifted)
    assert [s.attrs["aria-label"].split(":")[0] for s in svgs] == ["x", "n", "channel", "score"]
    for svg, col in zip(svgs, cols, strict=True):
        bins = len(col["baseline_proportions"])
        assert (svg.attrs["role"], svg.find("title")[0].text) == ("img", svg.attrs["aria-label"])
        for series in ("baseline", "window"):
            assert [int(b.attrs["data-bin"]) for b in bars(svg, series)] == list(range(bins))
        assert [t.text for t in svg.find("text", "legend")] == ["baseline", "window"]
        assert len(svg.find("text", "bin")) == bins
    numeric = [t.text for t in svgs[0].find("text", "bin")]
    assert numeric[0].startswith("≤ ") and numeric[-2].startswith("> ") and len(numeric) == 11
    assert numeric[-1] == "missing" and re.fullmatch(r"[\d.]+–[\d.]+", numeric[5])
    assert [t.text for t in svgs[2].find("text", "bin")] == ["app", "web", "other", "missing"]


def test_bar_heights_are_proportional_to_the_shares(drifted: dict[str, Any]) -> None:
    svgs = parse(render_html(drifted, generated_at=WHEN)).find("svg")
    for svg, col in zip(svgs, columns_of(drifted), strict=True):
        shares = {"baseline": col["baseline_proportions"], "window": col["window_proportions"]}
        top = max(float(t.text.rstrip("%")) for t in svg.find("text", "tick")) / 100
        largest = max(max(v) for v in shares.values())
        assert largest <= top < largest + 0.25  # the axis ends at the first tick above
        heights = {k: [float(b.attrs["height"]) for b in bars(svg, k)] for k in shares}
        flat_h = heights["baseline"] + heights["window"]
        flat_s = shares["baseline"] + shares["window"]
        assert flat_h.index(max(flat_h)) == flat_s.index(max(flat_s))
        for h, s in zip(flat_h, flat_s, strict=True):
            assert h == pytest.approx(s / top * PLOT_HEIGHT, abs=0.006)
            if s > 0.01:
                assert h / flat_h[flat_s.index(largest)] == pytest.approx(s / largest, rel=0.01)
        tops = [(float(b.attrs["y"]), float(b.attrs["height"])) for b in svg.find("rect", "bar")]
        floors = {round(y + h, 6) for y, h in tops}
        assert len(floors) == 1  # every bar stands on the x axis
    x = drifted["features"]["x"]
    assert x["window_proportions"][-2] > 0.3 > x["baseline_proportions"][-2]  # mass moved up


def test_bin_labels_are_compact_and_never_merge_distinct_edges() -> None:
    labels = ["≤ 0.123", "0.123–0.5", "0.5–3.4", "> 3.4", "missing"]
    assert edge_labels([0.1234, 0.5, 3.4]) == labels
    assert edge_labels([1.0001, 1.0002]) == ["≤ 1.0001", "1.0001–1.0002", "> 1.0002", "missing"]
    assert edge_labels([0.0, 0.0, 1.0]) == ["≤ 0", "0–0", "0–1", "> 1", "missing"]
    values = (12_345, 1_234_567, 999_999, 3_456.7, 12.0, -0.5, -0.0, 0.000123456, 1.5e-7, 2e16)
    assert [compact(v) for v in values] == [
        "12.3k", "1.23M", "1M", "3460", "12", "-0.5", "0", "0.000123", "1.5e-07", "2e+16",
    ]  # fmt: skip
    assert edge_labels([1_000.5, 52_340.0]) == ["≤ 1000", "1000–52.3k", "> 52.3k", "missing"]


def test_user_derived_text_is_escaped(drifted: dict[str, Any]) -> None:
    evil = '<script>alert("x")</script>'
    report = copy.deepcopy(drifted)
    report["model"] = "<b>m</b>"
    report["features"] = {evil: {**report["features"]["channel"], "name": evil}}
    report["features"][evil]["categories"] = ["<img src=x onerror=alert(1)>", "web"]
    page = render_html(report, generated_at=WHEN, context={"<i>source</i>": "s3://b/k?a=1&b=<2>"})
    tree = parse(page)
    assert "<script" not in page and "<img" not in page and "<b>" not in page
    assert not tree.find("script") and not tree.find("img") and not tree.find("b")
    assert tree.find("h3")[0].text.startswith(evil)
    links = {a.attrs["href"]: a.text for a in tree.find("a")}
    assert links["#col-0"] == evil  # the summary row links to the section
    assert tree.find("svg")[0].find("text", "bin")[0].text == "<img src=x oner…"
    rows = dict(header_rows(tree))
    assert (rows["Model"], rows["<i>source</i>"]) == ("<b>m</b>", "s3://b/k?a=1&b=<2>")


def test_the_page_is_self_contained_and_runs_no_code(drifted: dict[str, Any]) -> None:
    page = render_html(drifted, generated_at=WHEN)
    tree = parse(page)
    assert page.startswith("<!DOCTYPE html>\n") and not tree.find("script")
    assert not tree.find("link") and not tree.find("img")
    for node in tree.walk():
        assert not any(name.startswith("on") or name == "src" for name in node.attrs), node.tag
        assert all(v.startswith("#") for k, v in node.attrs.items() if k == "href")
    policy = [m for m in tree.find("meta") if m.attrs.get("http-equiv")][0]
    assert policy.attrs["content"] == "default-src 'none'; style-src 'unsafe-inline'"
    colours = dict(re.findall(r"\.status-(\w+)\{background:(#[0-9a-f]{6})\}", page))
    assert set(colours) == {s.value for s in Status}  # every status has its colour
    assert (colours["ok"], colours["warn"], colours["act"]) == ("#1a7f37", "#9a6700", "#cf222e")


def test_summary_lists_every_column_worst_psi_first_none_last(
    evaluation: dict[str, Any],
) -> None:
    window = records(1_000, shift=1.0, mix=(0.45, 0.35, 0.1, 0.1))
    for record in window:
        del record["features"]["n"]
    report = compute_drift(window, evaluation, model=MODEL).to_dict()
    rows = summary_rows(parse(render_html(report, generated_at=WHEN)))
    assert [r[0] for r in rows] == ["x", "channel", "score (score)", "n"]
    psis = [float(r[1]) for r in rows[:-1]]
    assert psis == sorted(psis, reverse=True) and rows[-1][:3] == ["n", "—", "missing_feature"]
    x = report["features"]["x"]
    assert ["x", f"{x['psi']:.4f}", "warn", "1000", "0.0%"] in rows
    channel = next(r for r in rows if r[0] == "channel")
    assert channel[4] == f"{report['features']['channel']['missing_share']:.1%}" != "0.0%"


def badge(node: Node) -> str:
    (only,) = node.find("span", "badge")
    (css,) = only.classes - {"badge"}
    assert css == f"status-{only.text}"
    return only.text


@pytest.mark.parametrize(
    ("window", "overall", "by_column"),
    [
        (lambda: records(2_000), "ok", {"ok"}),
        (lambda: records(2_000, shift=2.0), "act", {"act", "ok"}),
        (lambda: records(40), "insufficient_rows", {"insufficient_rows"}),
        (lambda: [], "empty_window", {"empty_window"}),
    ],
)
def test_statuses_carry_their_badge_classes(
    evaluation: dict[str, Any],
    window: Callable[[], list[dict[str, Any]]],
    overall: str,
    by_column: set[str],
) -> None:
    report = compute_drift(window(), evaluation, model=MODEL).to_dict()
    tree = parse(render_html(report, generated_at=WHEN))
    facts = tree.find("table", "facts")[0]
    status_row = next(r for r in facts.find("tr") if r.find("th")[0].text == "Status")
    assert badge(status_row) == overall == report["status"]
    sections = tree.find("section", "column")
    assert [badge(s.find("h3")[0]) for s in sections] == [c["status"] for c in columns_of(report)]
    assert {badge(s.find("h3")[0]) for s in sections} == by_column
    summary = tree.find("table", "summary")[0].find("tbody")[0].find("tr")
    assert sorted(map(badge, summary)) == sorted(c["status"] for c in columns_of(report))


def test_the_header_shows_the_window_thresholds_and_context(drifted: dict[str, Any]) -> None:
    context = {"Window": "2026-11-20..2026-11-21", "Package": "arn:aws:sagemaker:x"}
    local = datetime(2026, 11, 21, 15, 30, tzinfo=timezone(timedelta(hours=9)))
    tree = parse(render_html(drifted, generated_at=local, context=context, title="Nightly"))
    assert tree.find("title")[0].text == "Nightly" == tree.find("h1")[0].text
    rows = header_rows(tree)
    facts = dict(rows)
    assert (facts["Model"], facts["Version"]) == (MODEL, "(all versions)")
    assert facts["Records"] == "2000 used · 0 skipped (other model or version) · 0 malformed"
    assert (facts["First record"], facts["Last record"]) == (
        "2023-11-14T22:13:20Z", "2023-11-14T22:46:39Z",
    )  # fmt: skip
    assert facts["Thresholds"] == "warn at PSI ≥ 0.1 · act at PSI ≥ 0.25 · min rows 100"
    assert facts["Baseline"] == "20000 rows (train)"
    assert facts["Generated"] == "2026-11-21T06:30:00Z"  # 15:30 at UTC+9
    assert rows[-2:] == list(context.items())
    later = {**drifted, "window": {**drifted["window"], "outside_window": 7, "lines": 2_010,
                                   "malformed_lines": 10, "broken_sources": 1}}  # fmt: skip
    facts = dict(header_rows(parse(render_html(later))))
    assert facts["Records"] == (
        "2000 used · 0 skipped (other model or version) · 7 outside the window's time range · "
        "0 malformed"
    )
    assert facts["Log lines"] == "2010 read · 10 malformed · 1 unreadable object(s)"
    naive = parse(render_html(drifted, generated_at=datetime(2026, 11, 21, 6, 30)))
    assert "2026-11-21T06:30:00Z" in [td.text for td in naive.find("td")]


@pytest.mark.parametrize(
    "path",
    [
        ("model",), ("window",), ("status",), ("window", "records"), ("thresholds", "min_rows"),
        ("features", "x", "edges"), ("features", "channel", "categories"),
        ("score", "window_proportions"), ("score",),
    ],
)  # fmt: skip
def test_a_missing_key_is_named(drifted: dict[str, Any], path: tuple[str, ...]) -> None:
    report = copy.deepcopy(drifted)
    parent = report
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    with pytest.raises(ValueError, match=re.escape(f"missing key '{'.'.join(path)}'")):
        render_html(report, generated_at=WHEN)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["features"]["x"]["window_proportions"].pop(), r"features\.x\.window_pro"),
        (lambda r: r["score"].update(status="fine"), r"score\.status must be one of"),
        (lambda r: r["features"]["n"].update(psi="0.3"), r"features\.n\.psi must be a finite"),
        (lambda r: r["features"]["x"].update(kind="text"), "numeric or categorical"),
        (lambda r: r.update(features=[]), "features must be an object"),
    ],
)
def test_malformed_values_are_refused(
    drifted: dict[str, Any], mutate: Callable[[dict[str, Any]], object], message: str
) -> None:
    report = copy.deepcopy(drifted)
    mutate(report)
    with pytest.raises(ValueError, match=message):
        render_html(report, generated_at=WHEN)


def test_the_output_is_deterministic_and_the_same_from_json(drifted: dict[str, Any]) -> None:
    first = render_html(drifted, generated_at=WHEN, context={"a": "1"})
    assert render_html(drifted, generated_at=WHEN, context={"a": "1"}) == first
    stored = json.loads(json.dumps(drifted, allow_nan=False))
    assert render_html(stored, generated_at=WHEN, context={"a": "1"}) == first
    later = render_html(drifted, generated_at=WHEN + timedelta(hours=1), context={"a": "1"})
    pairs = zip(first.splitlines(), later.splitlines(), strict=True)
    changed = [(a, b) for a, b in pairs if a != b]
    assert changed == [
        ('<tr><th scope="row">Generated</th><td>2026-11-21T06:30:00Z</td></tr>',
         '<tr><th scope="row">Generated</th><td>2026-11-21T07:30:00Z</td></tr>'),
    ]  # fmt: skip


def test_an_empty_window_renders_baselines_and_flat_window_bars(
    evaluation: dict[str, Any],
) -> None:
    report = compute_drift([], evaluation, model=MODEL, version=3).to_dict()
    tree = parse(render_html(report, generated_at=WHEN))
    assert all(row[1] == "—" and row[4] == "—" for row in summary_rows(tree))
    facts = dict(header_rows(tree))
    assert (facts["Version"], facts["First record"], facts["Records"][:6]) == ("v3", "—", "0 used")
    for svg, col in zip(tree.find("svg"), columns_of(report), strict=True):
        assert {b.attrs["height"] for b in bars(svg, "window")} == {"0.00"}
        tallest = max(bars(svg, "baseline"), key=lambda b: float(b.attrs["height"]))
        assert int(tallest.attrs["data-bin"]) == int(np.argmax(col["baseline_proportions"]))
    notes = [p.text for p in tree.find("p", "note")]
    assert notes.count("The window holds no record of this model (and version).") == 4


def test_report_keys_are_partitioned_by_model_and_day() -> None:
    end = date(2026, 11, 21)
    assert report_key("drift-reports/", MODEL, end) == (
        "drift-reports/credit-risk/dt=2026-11-21/report.html"
    )
    assert report_key("", "m1", end, run_id="run-7.a") == "m1/dt=2026-11-21/run-7.a/report.html"
    for bad in ("", "-lead", "trail-", "a_b", "a/b", "x" * 64, "ok\n"):
        with pytest.raises(ValueError, match="not a model name"):
            report_key("drift-reports/", bad, end)
    for prefix in ("drift-reports", "/abs/"):
        with pytest.raises(ValueError, match="prefix"):
            report_key(prefix, MODEL, end)
    with pytest.raises(ValueError, match="run_id"):
        report_key("r/", MODEL, end, run_id="../x")
