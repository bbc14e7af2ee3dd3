"""The shipped observability stack, checked without Docker or Grafana.

The dashboard JSON against the structure Grafana imports (uid, schemaVersion, panels
with ids, grid positions, datasource and targets), the provisioning that loads it,
the Prometheus config and alert rules through ``promtool`` (syntax and rule unit
tests), and docker-compose.yml plus the Dockerfiles statically: every path they name
exists, and ``docker compose config`` (or docker-compose v1) accepts the file when
installed. Real Prometheus evaluation of the queries is in
tests/integration/test_prometheus.py.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
sys.path.insert(0, str(DEPLOY / "tools"))
from dashboard_queries import (  # noqa: E402
    alert_rules,
    alert_values,
    iter_panels,
    load_dashboard,
    panel_queries,
    to_promql,
)

PANEL_TYPES = {"stat", "timeseries", "heatmap", "table", "bargauge", "gauge", "row", "text"}
COMPOSE = REPO / "docker-compose.yml"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE)
    return data


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool missing: `make test` installs Debian's prometheus package")
    return path


# -- dashboard -----------------------------------------------------------------------------
def test_dashboard_has_the_structure_grafana_imports(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "candor-overview" and len(dashboard["uid"]) <= 40
    assert dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    assert dashboard["schemaVersion"] >= 36  # Grafana 9+ migrates nothing on import
    assert "id" not in dashboard or dashboard["id"] is None  # ids are assigned on import
    panels = iter_panels(dashboard)
    ids = [p["id"] for p in panels]
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids))
    for p in panels:
        assert p["type"] in PANEL_TYPES, p["type"]
        g = p["gridPos"]
        assert {"h", "w", "x", "y"} <= g.keys() and 0 <= g["x"] and g["x"] + g["w"] <= 24
        assert p["title"] and p.get("description")
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "candor-prometheus"}
        refs = [t["refId"] for t in p["targets"]]
        assert refs and len(refs) == len(set(refs))
        assert all(t["expr"].strip() and t["datasource"] == p["datasource"]
                   for t in p["targets"])


def test_dashboard_covers_what_operators_need(dashboard: dict[str, Any]) -> None:
    titles = {p["title"] for p in iter_panels(dashboard)}
    for needed in ("Abstention rate", "Abstention rate by reason",
                   "Answered vs abstained per second", "Stage mix",
                   "Latency per stage (p50, p95)", "Confidence distribution",
                   "Homogenization rate", "Tokens per answer", "Errors per second",
                   "vLLM queue", "vLLM KV-cache usage", "Promise verdict",
                   "Realised risk vs promise (audited)", "Audited labels",
                   "Abstention: audited vs calibration", "Input drift (PSI)",
                   "In-scope share of traffic", "Out-of-scope requests per second"):
        assert needed in titles


def _panel(dashboard: dict[str, Any], title: str) -> dict[str, Any]:
    (panel,) = [p for p in iter_panels(dashboard) if p["title"] == title]
    return panel


def test_scope_panels_plot_the_share_against_the_expected_one(
        dashboard: dict[str, Any]) -> None:
    share = _panel(dashboard, "In-scope share of traffic")
    assert share["type"] == "timeseries"
    assert share["fieldConfig"]["defaults"]["unit"] == "percentunit"
    exprs = {t["refId"]: " ".join(t["expr"].split()) for t in share["targets"]}
    ratios = [e for e in exprs.values() if "candor_scope_total" in e]
    assert ratios
    tested = re.escape('candor_scope_total{in_scope=~"true|false"}[$__rate_interval]')
    for e in ratios:  # in scope over all tested (untested requests are in neither)
        assert re.fullmatch(r"sum(?: by \(profile\) )?\(rate\(candor_scope_total"
                            r'\{in_scope="true"\}\[\$__rate_interval\]\)\) / '
                            rf"sum(?: by \(profile\) )?\(rate\({tested}\)\)", e), e
    assert any("sum by (profile)" in e for e in ratios)  # per profile
    # the reference series: 1 - level per profile, one line however many replicas
    assert "max by (profile) (candor_scope_expected_in_share)" in exprs.values()
    oos = _panel(dashboard, "Out-of-scope requests per second")
    assert any(re.search(r'rate\(candor_scope_total\{in_scope="false"\}\[\$__rate_interval\]',
                         t["expr"]) for t in oos["targets"])
    assert oos["fieldConfig"]["defaults"]["unit"] == "reqps"


def test_every_dashboard_query_parses_as_promql(tmp_path: Path) -> None:
    """Each panel query, with Grafana's variables replaced, as a recording rule: promtool
    parses it with Prometheus's own PromQL parser (no server needed)."""
    tool = promtool()
    queries = panel_queries()
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"candor_dashboard:query_{i}", "expr": to_promql(q.expr)}
        for i, q in enumerate(queries)]}]}
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    r = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{len(queries)} rules found" in r.stdout


def test_rates_use_rate_interval_and_quantiles_sum_by_le() -> None:
    seen = 0
    for q in panel_queries():
        for window in re.findall(r"\(\s*[a-z_:]+(?:\{[^}]*\})?\[([^\]]+)\]", q.expr):
            assert window == "$__rate_interval", (q.panel, q.expr)
            seen += 1
        if "histogram_quantile" in q.expr:
            assert re.search(r"histogram_quantile\(0\.\d+, sum by \(le[,)]", q.expr), q.expr
    assert seen >= 10  # the pattern really finds the range selectors


def _metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(candor_[a-z_]+|vllm:[a-z_]+)", expr))


def test_every_queried_metric_exists() -> None:
    families = {m.name for m in Metrics().registry.collect()}
    exprs = [q.expr for q in panel_queries()] + [a.expr for a in alert_rules()]
    names = set().union(*(_metric_names(e) for e in exprs))
    candor = {n for n in names if n.startswith("candor_")}
    for name in candor:
        base = re.sub(r"_(bucket|sum|count|total)$", "", name)
        assert base in families, name
    spec = importlib.util.find_spec("vllm")  # locate vLLM's metric names without importing it
    if spec is None or spec.origin is None:
        pytest.skip("vllm not installed: vLLM metric names not checked")
    source = (Path(spec.origin).parent / "v1" / "metrics" / "loggers.py").read_text()
    for name in names - candor:
        assert f'"{re.sub(r"_total$", "", name)}"' in source, name


def test_provisioning_points_at_the_dashboard_and_datasource(
    dashboard: dict[str, Any], compose: dict[str, Any]
) -> None:
    prov = DEPLOY / "grafana" / "provisioning"
    (ds,) = load_yaml(prov / "datasources" / "prometheus.yml")["datasources"]
    assert ds["uid"] == "candor-prometheus" and ds["type"] == "prometheus"
    assert ds["url"] == "http://prometheus:9090" and "prometheus" in compose["services"]
    (provider,) = load_yaml(prov / "dashboards" / "candor.yml")["providers"]
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts


# -- Prometheus config and alert rules --------------------------------------------------------
def test_alert_rules_are_well_formed() -> None:
    rules = load_yaml(DEPLOY / "prometheus" / "rules" / "candor.rules.yml")["groups"][0]["rules"]
    names = [r["alert"] for r in rules]
    assert {"CandorAbstentionSpike", "CandorHighErrorRate", "CandorEngineErrors"} <= set(names)
    for r in rules:
        assert r["labels"]["severity"] in {"info", "warning", "critical"}
        assert r["annotations"]["summary"] and r["annotations"]["description"]
    for a in alert_rules():
        assert alert_values(a.expr)  # `<value> <op> <number>`: the live test can check values


def test_out_of_scope_alert_compares_the_hourly_share_with_the_expected_one() -> None:
    rules = load_yaml(DEPLOY / "prometheus" / "rules" / "candor.rules.yml")["groups"][0]["rules"]
    (rule,) = [r for r in rules if r.get("alert") == "CandorTrafficOutOfScope"]
    assert rule["for"] == "15m" and rule["labels"]["severity"] == "warning"
    assert "docs/operations.md" in rule["annotations"]["description"]
    assert "calibration domain" in rule["annotations"]["description"]
    (a,) = [a for a in alert_rules() if a.name == "CandorTrafficOutOfScope"]
    share, traffic = alert_values(a.expr)
    assert share == ('min(candor_scope_expected_in_share) - '
                     'sum(increase(candor_scope_total{in_scope="true"}[1h])) / '
                     'sum(increase(candor_scope_total{in_scope=~"true|false"}[1h]))')
    assert traffic == 'sum(increase(candor_scope_total{in_scope=~"true|false"}[1h]))'
    assert re.search(r"\) > 0\.1 and .*\) > 20$", a.expr)
    doc = (REPO / "docs" / "operations.md").read_text()
    assert "## Scope: traffic the calibration never saw" in doc
    assert "CandorTrafficOutOfScope" in doc


def test_promtool_accepts_config_and_rules() -> None:
    tool = promtool()
    for args in (["check", "config", "prometheus.yml"],
                 ["check", "rules", "rules/candor.rules.yml"]):
        r = subprocess.run([tool, *args], cwd=DEPLOY / "prometheus", capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr


def test_alerts_fire_on_the_promtool_cases() -> None:
    r = subprocess.run([promtool(), "test", "rules", "candor.rules.test.yml"],
                       cwd=DEPLOY / "prometheus" / "tests", capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


# -- docker-compose and Dockerfiles -----------------------------------------------------------
def test_compose_services_profiles_and_paths(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"candor", "prometheus", "grafana"} <= services.keys()
    assert all("profiles" not in services[s] for s in ("candor", "prometheus", "grafana"))
    assert services["candor-gpu"]["profiles"] == ["gpu"]
    devices = services["candor-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    for svc in services.values():
        if "build" in svc:
            ctx = REPO / svc["build"]["context"]
            assert ctx.is_dir() and (ctx / svc["build"]["dockerfile"]).is_file()
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                assert (REPO / src).exists(), vol
            else:
                assert src in compose["volumes"], vol


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.gpu"])
def test_dockerfile_copies_existing_paths(dockerfile: str) -> None:
    text = (DEPLOY / dockerfile).read_text()
    ignore = (DEPLOY / f"{dockerfile}.dockerignore").read_text().splitlines()
    assert text.splitlines()[0].startswith("# syntax=") and "\nFROM " in text
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        for src in line.split()[:-1]:
            assert (REPO / src).exists(), src
            assert f"!{src.rstrip('/')}" in {i.rstrip("/") for i in ignore}, src
    assert 'ENTRYPOINT ["candor"]' in text and "EXPOSE 8000" in text
    assert "candor prepare-model" in text  # the embedded model is prepared at build time
    if dockerfile == "Dockerfile":  # the CPU image is the lock, as `make` installs it
        assert "--require-hashes" in text and "-r requirements/lock.txt" in text


def test_compose_config_is_accepted_by_docker_compose() -> None:
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) is None:
            continue
        probe = subprocess.run([*cmd, "version"], capture_output=True, text=True, timeout=60)
        if probe.returncode != 0:
            continue
        for profile in ([], ["--profile", "gpu"]):
            r = subprocess.run([*cmd, "-f", str(COMPOSE), *profile, "config", "-q"], cwd=REPO,
                               capture_output=True, text=True, timeout=60)
            assert r.returncode == 0, r.stdout + r.stderr
        return
    pytest.skip("neither `docker compose` nor `docker-compose` is installed "
                "(static checks above still ran)")
