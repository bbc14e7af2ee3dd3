"""Refit the ladder calibration over many split seeds (cached engine outputs, no engine).

For each seed: which alphas Learn-then-Test supports and the realised held-out risk,
i.e. an empirical look at "P(risk > alpha) <= delta" on real model outputs.
Run: .venv/bin/python docs/img/calibration/split_sweep.py [dataset n max_stage max_tokens]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from service.calibration.build import build_artifact
from service.calibration.records import to_records
from service.labelled.datasets import DATA_DIR
from service.labelled.grading import make_encoder
from service.offline.collection import gather

ALPHAS = (0.3, 0.4, 0.5, 0.6, 0.7)


def main() -> None:
    ds, n, stage, tokens = (sys.argv[1:] + ["ladder", "300", "0", "16"][len(sys.argv) - 1:])[:4]
    ns = argparse.Namespace(dataset=ds, n=int(n), seed=0, data_dir=DATA_DIR, server=None,
                            max_tokens=int(tokens), max_stage=int(stage), concurrency=None,
                            cache=None, no_progress=True, timeout=3600.0)
    items, responses, serving = gather(ns)
    records = to_records(items, responses, make_encoder(items))
    stats: dict[float, list[tuple[float, float]]] = defaultdict(list)
    seeds = range(20)
    for seed in seeds:
        art = build_artifact(records, dataset=ds, settings=serving, seed=seed, delta=0.1,
                             holdout=0.3, alphas=ALPHAS, default_alpha=ALPHAS[-1])
        for row in art.heldout["risk"]:
            stats[row["alpha"]].append((row["realised_risk"], row["coverage"]))
    out = {a: {"supported_in": len(stats[a]), "seeds": len(seeds),
               "held": sum(r <= a for r, _ in stats[a]),
               "mean_risk": sum(r for r, _ in stats[a]) / max(1, len(stats[a])),
               "mean_coverage": sum(c for _, c in stats[a]) / max(1, len(stats[a]))}
           for a in ALPHAS}
    print(json.dumps(out, indent=1))
    Path("docs/img/calibration/split_sweep.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
