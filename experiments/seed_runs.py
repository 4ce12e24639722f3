"""Seed a comparison folder with another folder's finished runs, so that `compare` reruns only
the optimizers whose options changed.

`compare` resumes from OUT/runs/ (one file per optimizer and seed); this writes those files
from BASE's trajectories for every optimizer except the ``--skip`` ones.  Rerunning `compare`
on OUT with the same store, target, sources, budget and seeds then runs only the skipped
optimizers (with their new options) and summarises everything as one comparison: the paired
tests pair each seed's new search with the unchanged opponents' searches of that seed (they
do not depend on the other optimizers' options).

    python experiments/seed_runs.py docs/results/compare/transnas-normal \\
        docs/results/compare-rank/transnas-normal --skip xfernas
    nasbench-xfer compare -s runs/transnas.h5 -t normal --budget 100 --seeds 10 \\
        --option xfernas.scores=rank -o docs/results/compare-rank/transnas-normal
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nasbench_xfer.evaluate.search import _run_file, read_trajectories  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", type=Path, help="a finished compare folder")
    ap.add_argument("out", type=Path, help="the compare folder to seed")
    ap.add_argument("--skip", default="xfernas", help="comma-separated optimizers not to copy")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    traj = read_trajectories(args.base)
    (args.out / "runs").mkdir(parents=True, exist_ok=True)
    n = 0
    for (opt, seed), run in traj.groupby(["optimizer", "seed"]):
        if opt in skip:
            continue
        path = _run_file(args.out, str(opt), int(seed))
        if not path.exists():
            run.sort_values("step").to_csv(path, index=False)  # `compare` recomputes the derived columns
            n += 1
    print(f"{args.out}: {n} runs copied from {args.base}")


if __name__ == "__main__":
    main()
