"""Zero-shot transfer on a multi-task store: XferNAS's universal network vs the best single source.

For each target task: the other tasks are the sources; the predictor is fitted on
``--source-size`` random architectures of each source (no target evaluation) and
predicts the target by its universal network.  It is scored by Spearman's rank
correlation with the target's true metric on the architectures that none of the
sampled source sets contains.  Next to it, the simplest transfer: rank by one
source task's own metric, for the source that correlates best with the target
(an oracle choice, so an upper bound for single-source transfer).

    python experiments/zero_shot.py --store runs/transnas.h5 --out docs/results/transnas_zero_shot
    python experiments/zero_shot.py --render --out docs/results/transnas_zero_shot   # table from the JSON
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def one(store_path: str, target: str, source_size: int, seed: int, options: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    from nasbench_xfer.predictor import TransferPredictor
    from nasbench_xfer.store import Store

    with Store.open(store_path) as st:
        tasks = st.tasks
        tables = {t: st.metric_table(t) for t in tasks}
        sources = [t for t in tasks if t != target]
        rng = np.random.default_rng(seed)
        history, used = {}, set()
        for s in sources:
            ids = np.flatnonzero(np.isfinite(tables[s]))
            pick = np.sort(rng.choice(ids, min(source_size, len(ids)), replace=False))
            used.update(pick.tolist())
            history[s] = (st.archs(pick), tables[s][pick])
        test = np.asarray([i for i in np.flatnonzero(np.isfinite(tables[target])) if i not in used])
        test_archs = st.archs(test)
        space = st.space
    t0 = time.perf_counter()
    model = TransferPredictor(space, seed=seed, **options)
    model.fit(history, target=target)
    pred = model.predict(target, test_archs)
    truth = tables[target][test]
    rho = float(stats.spearmanr(pred, truth).statistic)
    single = {s: float(stats.spearmanr(tables[s][test], truth).statistic) for s in sources}
    best = max(single, key=single.get)
    return {"target": target, "seed": seed, "source_size": source_size, "test_archs": int(len(test)),
            "xfernas_zero_shot_spearman": rho, "best_single_source": best,
            "best_single_source_spearman": single[best], "single_source_spearman": single,
            "fit_seconds": time.perf_counter() - t0}


def render(rows: list[dict], command: str) -> str:
    """The Markdown table of ``rows`` (one per target and seed): mean ± sample std (ddof=1) over
    the seeds; the oracle's source is named per seed where the seeds disagree."""
    targets = list(dict.fromkeys(r["target"] for r in rows))
    seeds = len({r["seed"] for r in rows})
    sizes = sorted({r["source_size"] for r in rows})
    lines = [f"Zero-shot Spearman on each target (no target evaluations; sources: the other tasks, "
             f"{', '.join(map(str, sizes))} random architectures each; mean ± sample std over {seeds} "
             f"seeds; scored on the architectures no source sample contains).", "",
             f"Command: `{command}`", "",
             "| target | XferNAS universal network | best single source (oracle choice) | its Spearman |",
             "|---|---|---|---|"]
    for t in targets:
        r = sorted((x for x in rows if x["target"] == t), key=lambda x: x["seed"])
        x = np.array([v["xfernas_zero_shot_spearman"] for v in r])
        b = np.array([v["best_single_source_spearman"] for v in r])
        picks = Counter(v["best_single_source"] for v in r)
        pick = ", ".join(f"{name} ({k} of {len(r)} seeds)" if len(picks) > 1 else name
                         for name, k in picks.most_common())
        lines.append(f"| {t} | {x.mean():.3f} ± {_sd(x):.3f} | {pick} | {b.mean():.3f} ± {_sd(b):.3f} |")
    return "\n".join(lines) + "\n"


def _sd(x: np.ndarray) -> float:
    return float(x.std(ddof=1)) if len(x) > 1 else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", help="the multi-task store (not needed with --render)")
    ap.add_argument("--targets", default=None, help="comma-separated (default: every task)")
    ap.add_argument("--source-size", type=int, default=500)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", required=True, help="output stem: writes STEM.json and STEM.md")
    ap.add_argument("--render", action="store_true",
                    help="rewrite STEM.md from the runs recorded in STEM.json; fits nothing")
    args = ap.parse_args()
    out = Path(args.out)
    if args.render:
        data = json.loads(out.with_suffix(".json").read_text())
        text = render(data["runs"], data["command"])
        out.with_suffix(".md").write_text(text)
        print(text, end="")
        return
    if not args.store:
        ap.error("--store is required unless --render")
    from nasbench_xfer.store import Store

    with Store.open(args.store) as st:
        targets = args.targets.split(",") if args.targets else st.tasks
    jobs = [(args.store, t, args.source_size, s, {}) for t in targets for s in range(args.seeds)]
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(one, *zip(*jobs)))
    out.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join(sys.argv)
    out.with_suffix(".json").write_text(json.dumps({"command": command, "runs": rows}, indent=1))
    text = render(rows, command)
    out.with_suffix(".md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
