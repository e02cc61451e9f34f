"""drift-check's outputs: JSON and self-contained HTML reports in the data bucket, and CloudWatch metrics (EMF).

Reports are written under ``<prefix>/<model>/<YYYYMMDDTHHMMSSZ>.json`` and ``.html``, each with
If-None-Match, so a report an event points at is never overwritten: a second check in the same
second gets a ``-2`` (``-3``, ...) suffix instead.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

from functions.adapters.s3 import get_bytes, list_keys, put_bytes
from functions.config import METRICS_NAMESPACE
from functions.domain.drift import DriftCheckReport, FeatureDistribution, FeatureDrift
from functions.errors import StorageError
from functions.observability import EnvironmentMetrics, MetricLine

if TYPE_CHECKING:
    from functions.services.drift_check import MetricPoint

MAX_SAME_SECOND = 20
DEFAULT_CHARTS = 6


@dataclass(frozen=True)
class ReportLocation:
    """Where the JSON and HTML reports of one check were written."""

    bucket: str
    json_key: str
    html_key: str

    @property
    def json_uri(self) -> str:
        return f"s3://{self.bucket}/{self.json_key}"

    @property
    def html_uri(self) -> str:
        return f"s3://{self.bucket}/{self.html_key}"


class S3ReportStore:
    """Writes each check's JSON and HTML reports to the data bucket, confirmed and never overwritten."""

    def __init__(self, s3: Any, bucket: str, prefix: str = "reports/drift") -> None:
        self._s3 = s3
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def stem(self, report: DriftCheckReport, attempt: int = 1) -> str:
        """The key of a report without its extension.

        Args:
            report: the check's report (its model name and time name the key).
            attempt: 1 for the first check of that second, 2 for the next, ...

        Returns:
            ``<prefix>/<model>/<YYYYMMDDTHHMMSSZ>`` with ``-<attempt>`` from the second attempt.
        """
        stamp = report.generated_at.strftime("%Y%m%dT%H%M%SZ")
        suffix = "" if attempt == 1 else f"-{attempt}"
        return f"{self.prefix}/{report.model_name}/{stamp}{suffix}"

    def last_calm(self, model_name: str, before: datetime, limit: int = 24) -> datetime | None:
        """When the latest check before ``before`` that found no drift ended its window (None if none of the
        last ``limit`` checks did): a shift found now began after it."""
        prefix = f"{self.prefix}/{model_name}/"
        keys = [key for key in list_keys(self._s3, self.bucket, prefix) if key.endswith(".json")]
        for key in sorted(keys, reverse=True)[:limit]:
            found = get_bytes(self._s3, self.bucket, key)
            if found is None:
                continue
            try:
                document = json.loads(found[0])
                end = datetime.fromisoformat(document["window"]["end"])
            except (ValueError, KeyError, TypeError):
                continue  # a report we cannot read says nothing about when the shift began
            if document.get("verdict") == "NO_DRIFT" and end < before:
                return end
        return None

    def save(self, report: DriftCheckReport) -> ReportLocation:
        """Write ``report`` as JSON and as HTML.

        Args:
            report: the check's report.

        Returns:
            Where both were written; both writes are confirmed when this returns.

        Raises:
            StorageError: a write failed, or every key of that second was taken.
        """
        body = report.model_dump_json(indent=2).encode()
        for attempt in range(1, MAX_SAME_SECOND + 1):
            stem = self.stem(report, attempt)
            # The JSON write claims the stem; the HTML beside it then belongs to this check.
            if put_bytes(
                self._s3, self.bucket, f"{stem}.json", body, content_type="application/json", if_none_match=True
            ):
                html_key = f"{stem}.html"
                written = put_bytes(
                    self._s3,
                    self.bucket,
                    html_key,
                    render_html(report).encode(),
                    content_type="text/html; charset=utf-8",
                    if_none_match=True,
                )
                if written is None:
                    raise StorageError(f"report s3://{self.bucket}/{html_key} was written by someone else")
                return ReportLocation(bucket=self.bucket, json_key=f"{stem}.json", html_key=html_key)
        raise StorageError(f"no free report key for {report.model_name} at {report.generated_at.isoformat()}")


class EmfMetricSink:
    """drift-check's metrics through Powertools: model-level ones on the invocation's EMF blob,
    per-feature (or per-metric) ones each as a single EMF metric with its extra dimension."""

    def __init__(self, metrics: Metrics | EnvironmentMetrics) -> None:
        self._metrics = metrics

    def emit(self, points: Sequence[MetricPoint], dimensions: Mapping[str, str]) -> None:
        """Emit ``points``; the model-level ones are flushed with the invocation (``log_metrics``).

        Args:
            points: the values to emit.
            dimensions: dimensions of every point (model name and version).
        """
        for name, value in dimensions.items():
            self._metrics.add_dimension(name=name, value=value)
        namespace = self._metrics.namespace or METRICS_NAMESPACE
        for point in points:
            unit = MetricUnit[point.unit]
            if point.dimensions:
                # Exactly the documented dimension set: Powertools' single_metric would add a "service" one.
                MetricLine(namespace, {**dimensions, **point.dimensions}, {point.name: unit.value}).emit([point.value])
            else:
                self._metrics.add_metric(name=point.name, unit=unit, value=point.value)


# --------------------------------------------------------------------------- the HTML report

REFERENCE_COLOUR, CURRENT_COLOUR, GRID_COLOUR, AXIS_COLOUR = "#7f8fa6", "#e67e22", "#e3e6ea", "#5b6570"
# Charts carry their colours as attributes, so one still reads when copied out of the page.
_AXIS = f'fill="{AXIS_COLOUR}" font-size="10" font-family="sans-serif"'
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d2329;margin:0;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:0 20px 40px}
.banner{padding:18px 20px;color:#fff;font-size:20px;font-weight:600}
.banner small{display:block;font-size:14px;font-weight:400;opacity:.92;margin-top:4px}
.DRIFT{background:#c0392b}.NO_DRIFT{background:#2e7d32}.INSUFFICIENT_DATA{background:#b7791f}
.perf{margin:12px 0;padding:10px 14px;border-radius:6px;background:#fff;border-left:6px solid #2e7d32}
.perf.DEGRADED{border-color:#c0392b}.perf.INSUFFICIENT_DATA{border-color:#b7791f}
h2{font-size:17px;margin:26px 0 10px}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{padding:5px 9px;border-bottom:1px solid #e3e6ea;text-align:left;vertical-align:top}
th{background:#eef0f3;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.drifted td{background:#fdecea}tr.warning td{background:#fff8e1}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;background:#fff;padding:12px 16px;margin:0}
dt{color:#5b6570}dd{margin:0}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:14px}
figure{margin:0;background:#fff;padding:10px;border-radius:6px}
figcaption{font-weight:600;margin-bottom:4px}figcaption span{font-weight:400;color:#5b6570}
.note{color:#5b6570}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "–"
    if value != 0 and abs(value) < 10 ** -(digits - 1):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _short(label: str, limit: int = 13) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def bar_chart(distribution: FeatureDistribution, width: int = 440, height: int = 230) -> str:
    """An inline SVG of reference vs current shares per cell, side by side.

    Args:
        distribution: the cells' labels and both sides' shares.
        width: the drawing's width in user units (it scales to its container).
        height: the drawing's height in user units.

    Returns:
        An ``<svg>`` element with a ``<title>`` tooltip on every bar.
    """
    left, right, top, bottom = 44, 8, 26, 62
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(1, len(distribution.labels))
    peak = max([*distribution.reference, *distribution.current, 1e-9])
    ymax = min(1.0, max(0.05, -(-peak // 0.05) * 0.05))
    group = plot_w / n
    bar = group * 0.4
    parts = [
        f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" xmlns="http://www.w3.org/2000/svg">',
        f'<rect x="{left}" y="6" width="10" height="10" fill="{REFERENCE_COLOUR}"/>'
        f'<text x="{left + 14}" y="15" {_AXIS}>reference</text>'
        f'<rect x="{left + 80}" y="6" width="10" height="10" fill="{CURRENT_COLOUR}"/>'
        f'<text x="{left + 94}" y="15" {_AXIS}>current</text>',
    ]
    for k in range(5):
        share = ymax * k / 4
        y = top + plot_h - plot_h * k / 4
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID_COLOUR}"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end" {_AXIS}>{_pct(share)}</text>')
    for i, label in enumerate(distribution.labels):
        x = left + i * group + group * 0.1
        for offset, colour, side, share in (
            (0.0, REFERENCE_COLOUR, "reference", distribution.reference[i]),
            (bar, CURRENT_COLOUR, "current", distribution.current[i]),
        ):
            h = plot_h * min(share, ymax) / ymax
            parts.append(
                f'<rect x="{x + offset:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{_e(label)}: {side} {_pct(share)}</title></rect>'
            )
        cx, cy = x + bar, top + plot_h + 10
        parts.append(
            f'<text x="{cx:.1f}" y="{cy:.1f}" text-anchor="end" {_AXIS} '
            f'transform="rotate(-40 {cx:.1f} {cy:.1f})">{_e(_short(label))}<title>{_e(label)}</title></text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _banner(report: DriftCheckReport) -> str:
    drift = report.drift
    policy = drift.policy
    if report.verdict == "INSUFFICIENT_DATA":
        title = "INSUFFICIENT DATA: no verdict on drift"
        detail = (
            f"{report.rows_checked} rows of version {report.model_version} in the window; {policy.min_rows} needed."
        )
    elif report.verdict == "DRIFT":
        named = ", ".join(drift.drifted[:8]) + (" …" if len(drift.drifted) > 8 else "")
        title = f"DRIFT: {len(drift.drifted)} of {len(drift.features)} features drifted"
        detail = named or "no single feature; the model's output distribution moved"
        if drift.prediction_drifted:
            detail += f" · model output PSI {_num(drift.prediction_psi, 3)}"
    else:
        title = f"NO DRIFT: 0 of {len(drift.features)} features drifted"
        detail = f"{len(drift.warnings)} warning(s)" + (f": {', '.join(drift.warnings[:8])}" if drift.warnings else "")
    return f'<div class="banner {report.verdict}">{_e(title)}<small>{_e(detail)}</small></div>'


def _summary(report: DriftCheckReport) -> str:
    policy = report.drift.policy
    rows = [
        ("Model", f"{report.model_name} version {report.model_version}"),
        ("Alias", report.alias or "– (version requested explicitly)"),
        ("Window", f"{report.window.start.isoformat()} → {report.window.end.isoformat()} ({report.window.hours:g} h)"),
        ("Generated", report.generated_at.isoformat()),
        ("Rows checked", f"{report.rows_checked:,}"),
        ("Rows of other versions", f"{report.rows_other_versions:,} (ignored)"),
        ("Scope", report.scope),
        ("Outcomes joined", f"{report.outcomes_joined:,}"),
        ("Model output PSI", _num(report.drift.prediction_psi)),
        (
            "Policy",
            f"PSI warning {policy.psi_warning:g}, drift {policy.psi_drift:g}; p-values corrected by "
            f"{policy.correction.replace('_', '-')} at α={policy.p_value_alpha:g}; minimum {policy.min_rows} rows; "
            f"performance tolerance {policy.performance_tolerance:.0%}",
        ),
    ]
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows) + "</dl>"


def _performance(report: DriftCheckReport) -> str:
    perf = report.performance
    if perf is None:
        return '<h2>Performance</h2><p class="note">No captured row of this window has an outcome yet.</p>'
    if perf.relative_drop is None:
        headline = f"Performance: not judged ({perf.note})"
    else:
        word = "DEGRADED" if perf.degraded else "within tolerance"
        headline = (
            f"Performance {word}: {perf.metric} {_num(perf.live_value)} on {perf.labeled_rows:,} labelled rows "
            f"vs {_num(perf.validation_value)} on validation (relative drop {perf.relative_drop:+.1%}, "
            f"tolerance {perf.tolerance:.0%})"
        )
        if perf.note:
            headline += f". {perf.note}"
    rows = "".join(
        f'<tr><td>{_e(name)}</td><td class="num">{_num(value)}</td></tr>' for name, value in perf.metrics.items()
    )
    table = f"<table><tr><th>Live metric</th><th>Value</th></tr>{rows}</table>" if rows else ""
    return f'<h2>Performance</h2><div class="perf {perf.status}">{_e(headline)}</div>{table}'


def _worst(report: DriftCheckReport, count: int) -> list[FeatureDistribution]:
    by_name = {d.name: d for d in report.distributions if d.kind != "prediction"}
    ranked = sorted(report.drift.features, key=lambda f: (not f.drifted, -f.psi, f.name))
    chosen = [by_name[f.name] for f in ranked[:count] if f.name in by_name]
    return chosen + [d for d in report.distributions if d.kind == "prediction"]


def _charts(report: DriftCheckReport, count: int) -> str:
    psi_of = {f.name: f.psi for f in report.drift.features}
    if report.drift.prediction_psi is not None:
        psi_of["model output"] = report.drift.prediction_psi
    figures = [
        f"<figure><figcaption>{_e(d.name)} <span>PSI {_num(psi_of.get(d.name))}</span></figcaption>"
        f"{bar_chart(d)}</figure>"
        for d in _worst(report, count)
    ]
    if not figures:
        return ""
    return f'<h2>Worst features: reference vs current</h2><div class="charts">{"".join(figures)}</div>'


def _status(feature: FeatureDrift) -> str:
    return "drifted" if feature.drifted else "warning" if feature.warning else "ok"


def _feature_table(report: DriftCheckReport) -> str:
    features = sorted(report.drift.features, key=lambda f: (-f.psi, f.name))
    if not features:
        return ""
    head = (
        "<tr><th>Feature</th><th>Kind</th><th>Status</th><th>PSI</th><th>Test</th><th>Statistic</th>"
        "<th>p-value</th><th>Adjusted p</th><th>Rows</th><th>Unseen</th></tr>"
    )
    body = "".join(
        f'<tr class="{_status(f)}"><td>{_e(f.name)}</td><td>{f.kind}</td><td>{_status(f)}</td>'
        f'<td class="num">{_num(f.psi)}</td><td>{_e(f.test or "–")}</td><td class="num">{_num(f.statistic)}</td>'
        f'<td class="num">{_num(f.p_value)}</td><td class="num">{_num(f.adjusted_p_value)}</td>'
        f'<td class="num">{f.n_current:,}</td><td>{_e(", ".join(f.unseen[:10]))}</td></tr>'
        for f in features
    )
    return f"<h2>All features</h2><table>{head}{body}</table>"


def render_html(report: DriftCheckReport, charts: int = DEFAULT_CHARTS) -> str:
    """The human-readable report: verdict banner, summary, performance, charts of the worst features, all features.

    Self-contained: inline CSS and SVG, no scripts, fonts or images from elsewhere.

    Args:
        report: the check's report.
        charts: how many of the worst features to chart (the model output is charted as well).

    Returns:
        The HTML document.
    """
    title = f"Drift report: {report.model_name} v{report.model_version}, {report.generated_at:%Y-%m-%d %H:%M} UTC"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"{_banner(report)}<main><h2>{_e(title)}</h2>{_summary(report)}{_performance(report)}"
        f"{_charts(report, charts)}{_feature_table(report)}</main></body></html>"
    )
