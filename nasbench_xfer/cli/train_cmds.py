"""``nasbench-xfer train``: train architectures on a dataset and append the results to a store."""
from __future__ import annotations

import json

import click

from .params import executor_options, parse_seeds, store_input


@click.command("train")
@store_input("Store the evaluations are appended to (created if missing, unless --no-create).")
@click.option("--dataset", "-d", required=True,
              help="cifar10, cifar100, svhn, mnist, fashion_mnist, quickdraw, imagefolder:<path>, npz:<path>.")
@click.option("--data", "--data-root", "data_root", default=None, type=click.Path(file_okay=False),
              help="Dataset root (default: $NASBENCH_XFER_DATA or ~/.cache/nasbench_xfer/data).")
@click.option("--task", "-t", "task_name", default=None, help="Task name in the store (default: the dataset).")
@click.option("--protocol", "-p", default="paper-search", show_default=True,
              help="Training protocol: a registered name (`nasbench-xfer list protocols`: paper-search, "
                   "paper-final, proxy-10ep, proxy-25ep, nb-proxy, nb-proxy-3x, smoke, or a plugin's).")
@click.option("--arch", "-a", "archs", multiple=True,
              help="Architecture: a name (xfernasnet) or appendix-C JSON (repeatable).")
@click.option("--archs-file", "--archs", "arch_files", multiple=True, type=click.Path(dir_okay=False),
              help="File of architectures: a JSON list, or one compact JSON per line (repeatable).")
@click.option("--random", "--sample", "n_random", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also train this many random architectures.")
@click.option("--arch-seed", type=int, default=0, show_default=True, help="Seed of --random.")
@click.option("--seeds", default="0", show_default=True,
              help="Training seeds: one (3), a list (0,1,2) or a range (0-4).")
@click.option("--split-seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the validation split.")
@click.option("--num-classes", type=int, default=None, help="Quickdraw/pooled sets: classes to draw.")
@click.option("--device", default=None, help="cuda, cuda:1, cpu (default: cuda if available).")
@click.option("--devices", default=None,
              help="Several devices, one worker process each, e.g. cuda:0,cuda:1,cuda:2,cuda:3; repeat one "
                   "(cuda:0,cuda:0) to train several architectures on a GPU at once.")
@click.option("--shard", default=None, help="i/n: train every n-th job from i (0-based).")
@click.option("--retry-failed", is_flag=True, help="Train again jobs whose stored status is failed.")
@click.option("--create/--no-create", default=True, show_default=True, help="Create STORE if missing.")
@click.option("--concurrent", "-k", type=int, default=None,
              help="Trainings at once in one process, each on its own CUDA stream (default: 8 on a GPU, "
                   "1 on CPU). Finished evaluations are then stored in groups every few seconds.")
@click.option("--time-limit", type=click.FloatRange(min=0), default=None,
              help="Seconds after which no new training starts (those in flight finish); rerun to resume.")
@click.option("--cuda-graphs/--no-cuda-graphs", default=True, show_default=True,
              help="Capture each architecture's whole training step as one CUDA graph (GPU only; a failed "
                   "capture falls back to the eager step and the record's flags say so).")
@click.option("--compile", "use_compile", is_flag=True,
              help="torch.compile the forward instead (eager steps, no CUDA graph; for comparison).")
@click.option("--bf16/--no-bf16", default=False, show_default=True,
              help="bf16 autocast and channels_last on the GPU. Changes results: on an H100 it lowered "
                   "accuracy after 4 epochs by 4.3-4.7 points (benchmarks/results/parity_variants.json).")
@click.option("--fuse", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train this many architectures at a time as one horizontally fused network (the same "
                   "trainings as one at a time, tested on CPU, except the drop-path masks: drawn from one "
                   "generator for the G networks, so with drop-path a record differs as another seed's "
                   "would; its GPU speed is measured by benchmarks/harness_bench.py). Single-device runs only.")
@click.option("--dry-run", is_flag=True,
              help="Check everything and list the jobs; train nothing and write nothing (a missing STORE "
                   "stays missing).")
@click.option("--lock-timeout", type=click.FloatRange(min=0), default=600.0, show_default=True,
              help="Seconds to wait for the store's lock while another process writes it.")
@executor_options
def train_cmd(store, dataset, data_root, task_name, protocol, archs, arch_files, n_random, arch_seed, seeds,
              split_seed, num_classes, device, devices, shard, retry_failed, create, concurrent, time_limit,
              cuda_graphs, use_compile, bf16, fuse, dry_run, lock_timeout, executor) -> None:
    """Train architectures on DATASET under a protocol; append each result to STORE.

    Resumable: evaluations already in STORE for the same task, protocol and seed
    are skipped; each finished evaluation is written at once, so a killed run
    loses only the ones in progress.  Several GPUs of a machine: --devices;
    several machines: --shard i/n on each, then `nasbench-xfer merge`, or --executor ray|slurm: one
    task per training on a cluster, each result appended to STORE by this process.  All input (protocol,
    architectures, shard, device, store, data files) is checked before the first training starts.
    """
    import torch

    from ..harness.protocols import get_protocol
    from ..harness.runner import RunError, load_archs, run
    from ..harness.train import SpeedFlags
    from ..logs import get_logger

    try:
        proto = get_protocol(protocol)
        arch_list = load_archs(archs, arch_files, n_random, arch_seed, proto.num_blocks)
        seed_list = parse_seeds(seeds)
    except (RunError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if device and devices:
        raise click.UsageError("give --device or --devices, not both")
    if not executor.local and (devices or concurrent is not None or time_limit is not None):
        raise click.UsageError(f"--devices, --concurrent and --time-limit are for --executor local; with "
                               f"{executor.name} each training is one task on its own device")
    if not executor.local:
        device = device or "auto"  # each task's GPU when it has one, else its CPU
    device = devices or device or ("cuda" if torch.cuda.is_available() else "cpu")
    if concurrent is not None and concurrent < 1:
        raise click.BadParameter("must be >= 1", param_hint="--concurrent")
    if concurrent is None:
        concurrent = 8 if str(device).startswith("cuda") and "," not in str(device) else 1
    if fuse > 1 and (not executor.local or (devices and "," in str(devices))):
        raise click.UsageError("--fuse trains on one device: not with several --devices or a cluster executor")
    flags = SpeedFlags(bf16=bf16, channels_last=bf16, compile=use_compile, graph_step=cuda_graphs, fuse=fuse)
    ex = None if executor.local or dry_run else executor.make()
    try:
        summary = run(store, dataset, arch_list, proto, seeds=seed_list, device=device, shard=shard,
                      task_name=task_name, data_root=data_root, split_seed=split_seed,
                      num_classes=num_classes, flags=flags, retry_failed=retry_failed, create=create,
                      dry_run=dry_run, log=get_logger(__name__).info, progress=not dry_run, concurrent=concurrent,
                      time_limit=time_limit, wait_s=lock_timeout, executor=ex)
    except RunError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        if ex is not None:
            ex.close()
    summary.pop("records", None)
    click.echo(json.dumps(summary, default=str))


def register(cli: click.Group) -> None:
    cli.add_command(train_cmd)
