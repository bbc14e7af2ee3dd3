"""Draw the Candor dashboard's main panels as a PNG, from a real Prometheus.

Operators see Grafana; readers of the docs see this picture. Both come from the same
expressions (``dashboard_queries``): each panel's targets are run through Prometheus's
``/api/v1/query_range`` and plotted with matplotlib, one subplot per panel.

    python deploy/tools/render_dashboard.py --prometheus http://127.0.0.1:9090 \
        --minutes 10 --out docs/img/dashboard.png
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import httpx
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_queries import iter_panels, load_dashboard, to_promql  # noqa: E402

MAIN_PANELS = (
    "Answered vs abstained per second", "Abstention rate by reason", "Stage mix",
    "Latency per stage (p50, p95)", "Confidence distribution", "Homogenization rate",
    "Tokens per answer", "Errors per second", "vLLM queue", "vLLM KV-cache usage",
    "Realised risk vs promise (audited)", "Input drift (PSI)",
)


def query_range(client: httpx.Client, expr: str, start: float, end: float,
                step: float) -> list[dict[str, object]]:
    r = client.get("/api/v1/query_range",
                   params={"query": expr, "start": start, "end": end, "step": step})
    r.raise_for_status()
    body = r.json()
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    result: list[dict[str, object]] = body["data"]["result"]
    return result


def legend(fmt: str, labels: dict[str, str]) -> str:
    out = fmt
    for k, v in labels.items():
        out = out.replace("{{" + k + "}}", v)
    return out or ",".join(f"{k}={v}" for k, v in labels.items()) or "value"


def _plot_heatmap(ax: plt.Axes, client: httpx.Client, expr: str, end: float,
                  window: str) -> int:
    """A heatmap panel as one histogram: bucket counts over the whole window."""
    r = client.get("/api/v1/query", params={"query": to_promql(expr, window), "time": end})
    r.raise_for_status()
    rows = sorted((float(s["metric"]["le"]), float(s["value"][1]))
                  for s in r.json()["data"]["result"])
    if not rows:
        return 0
    les = [le for le, _ in rows]
    counts = [c - (rows[i - 1][1] if i else 0.0) for i, (_, c) in enumerate(rows)]
    names = [f"<={le:g}" if math.isfinite(le) else "+Inf" for le in les]
    ax.bar(names, counts, color="tab:blue")
    ax.set_ylabel(f"rate over {window}, per s", fontsize=7)
    ax.tick_params(axis="x", labelrotation=45)
    return 1


Line = tuple[str, list[float], list[float]]


def _series(client: httpx.Client, target: dict[str, str], start: float, end: float,
            step: float, rate: str) -> list[Line]:
    lines = []
    for series in query_range(client, to_promql(target["expr"], rate), start, end, step):
        pts = [(float(ts) - end, float(v)) for ts, v in series["values"]]  # type: ignore[union-attr]
        pts = [(x, y) for x, y in pts if math.isfinite(y)]
        if pts:
            labels: dict[str, str] = series["metric"]  # type: ignore[assignment]
            xs, ys = zip(*pts, strict=True)
            lines.append((legend(target.get("legendFormat", ""), labels), list(xs), list(ys)))
    return lines


def _plot_lines(ax: plt.Axes, lines: list[Line]) -> int:
    """Plot the lines; all-zero ones are hidden unless nothing else is left to show."""
    shown = [ln for ln in lines if any(ln[2])] or lines
    for label, xs, ys in shown:
        ax.plot(xs, ys, label=label)
    ax.set_xlabel("seconds before the end", fontsize=7)
    return len(shown)


def render(prometheus: str, out: Path, start: float, end: float, step: float = 2.0,
           rate: str = "1m") -> int:
    """Plot the main panels between ``start`` and ``end`` (unix s); returns series drawn."""
    panels = [p for p in iter_panels(load_dashboard()) if p["title"] in MAIN_PANELS]
    cols = 2
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(14, 3.0 * rows), squeeze=False)
    window = f"{max(1, int(end - start))}s"
    drawn = 0
    with httpx.Client(base_url=prometheus, timeout=30) as client:
        for ax, panel in zip(axes.flat, panels, strict=False):
            if panel["type"] == "heatmap":
                drawn += sum(_plot_heatmap(ax, client, t["expr"], end, window)
                             for t in panel["targets"])
            else:
                lines = [ln for t in panel["targets"]
                         for ln in _series(client, t, start, end, step, rate)]
                drawn += _plot_lines(ax, lines)
            ax.set_title(panel["title"], fontsize=10)
            ax.tick_params(labelsize=7)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6, loc="upper left", ncol=2)
        for ax in list(axes.flat)[len(panels):]:
            ax.axis("off")
    fig.suptitle(f"Candor overview: rates over {rate}; all-zero series hidden "
                 "unless a panel has nothing else")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return drawn


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prometheus", default="http://127.0.0.1:9090")
    p.add_argument("--out", type=Path, default=Path("docs/img/dashboard.png"))
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--step", type=float, default=5.0, help="seconds between points")
    p.add_argument("--rate", default="1m", help="what $__rate_interval stands for")
    args = p.parse_args(argv)
    end = time.time()
    n = render(args.prometheus, args.out, end - args.minutes * 60, end, args.step, args.rate)
    print(f"wrote {args.out} ({n} series)")
    return 0 if n else 1


if __name__ == "__main__":
    sys.exit(main())
