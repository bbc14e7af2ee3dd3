"""Every PromQL expression the operators rely on, read from the shipped files.

The dashboard (``deploy/grafana/dashboards/candor.json``) and the alert rules
(``deploy/prometheus/rules/candor.rules.yml``) are the single source: the integration
test evaluates these expressions on a real Prometheus and the renderer plots them, so
what is tested and drawn is exactly what Grafana and Alertmanager run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[1]
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "candor.json"
RULES = DEPLOY / "prometheus" / "rules" / "candor.rules.yml"

# A condition of an alert: `<value expression> <comparison> <number>`.
_CONDITION = re.compile(r"^(?P<value>.+?)\s*(?P<op>>=|<=|==|!=|>|<)\s*(?P<num>[-+0-9.e]+)$", re.S)


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    ref_id: str
    expr: str
    legend: str


@dataclass(frozen=True)
class AlertRule:
    name: str
    expr: str


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def iter_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """All panels, including those nested in collapsed rows."""
    out: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def panel_queries(dashboard: dict[str, Any] | None = None) -> list[PanelQuery]:
    dashboard = dashboard or load_dashboard()
    return [
        PanelQuery(p["title"], t["refId"], t["expr"], t.get("legendFormat", ""))
        for p in iter_panels(dashboard)
        for t in p.get("targets", [])
    ]


def to_promql(expr: str, rate_interval: str = "1m", range_: str = "5m") -> str:
    """Replace Grafana's built-in variables by concrete ranges Prometheus accepts."""
    for var, value in (("$__rate_interval", rate_interval), ("$__interval", rate_interval),
                       ("$__range", range_)):
        expr = expr.replace(var, value).replace("${" + var[1:] + "}", value)
    return expr


def alert_rules(path: Path = RULES) -> list[AlertRule]:
    doc = yaml.safe_load(path.read_text())
    return [
        AlertRule(r["alert"], " ".join(str(r["expr"]).split()))
        for g in doc["groups"]
        for r in g["rules"]
        if "alert" in r
    ]


def alert_values(expr: str) -> list[str]:
    """The value expressions of an alert (its conditions without the thresholds).

    ``a / b > 0.5 and c > 0.01`` gives ``["a / b", "c"]``. Raises ``ValueError`` when
    a condition is not of the form ``<value> <op> <number>``.
    """
    values = []
    for part in re.split(r"\s+and\s+", expr.strip()):
        m = _CONDITION.match(part.strip())
        if m is None:
            raise ValueError(f"not `<value> <op> <number>`: {part!r}")
        values.append(m.group("value").strip())
    return values
