"""The command line shared by every benchmark command.

Each command builds its parser with :func:`base_parser`, adds its own options
(``--task``, ``--study``, ...), then calls :func:`setup_run`::

    parser = base_parser("benchmarks.tasks", "Train and evaluate ...", "results/tasks",
                         examples=["--task roads --quick"])
    parser.add_argument("--task", choices=TASKS, required=True)
    args = parser.parse_args(argv)
    env = setup_run(args)                      # threads, seeds, args.out resolved
    store = ResultStore(args.out, protocol_config(args, task=args.task), ("model",),
                        environment=env, fresh=args.fresh)

Schedules: ``--quick`` (minutes on 2 CPU cores: smoke-sized data and epochs),
the default schedule, and ``--full`` (the paper's schedule where the hardware
allows it). :func:`schedule_name` returns ``'quick'``, ``'default'`` or ``'full'``.
"""
from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "SCHEDULES",
    "base_parser",
    "positive_int",
    "protocol_config",
    "resolve_out_dir",
    "run_parts",
    "schedule_name",
    "setup_run",
]

#: The three schedules, from cheapest to most faithful.
SCHEDULES = ("quick", "default", "full")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description/epilog layout and shows every meaningful default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False \
                or action.default is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action)


def positive_int(text: str) -> int:
    """``argparse`` type of a count option: an int >= 1, else a usage error naming it."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _default_data_root() -> Path:
    from pyg_hgconv.datasets.root import data_root

    return data_root()


def base_parser(
    prog: str,
    description: str,
    default_out: str | os.PathLike,
    *,
    examples: Sequence[str] | None = None,
) -> argparse.ArgumentParser:
    """Return the parser with the options every benchmark command shares.

    Args:
        prog: the module name, e.g. ``"benchmarks.tasks"`` (shown as
            ``python -m benchmarks.tasks``).
        description: what the command measures (first paragraph of ``--help``).
        default_out: base output directory; without ``--out`` results go to
            ``<default_out>/<schedule>`` so that quick, default and full runs
            never overwrite one another.
        examples: argument strings shown in the epilog as
            ``python -m <prog> <example>``; defaults to a quick run and a full run.

    Options: ``--quick`` | ``--full`` (mutually exclusive), ``--data-root DIR``,
    ``--out DIR``, ``--seed N`` (0), ``--threads N`` (2), ``--device`` (cpu),
    ``--fresh``, ``--no-progress``: every command has them.
    """
    if examples is None:
        examples = ["--quick", f"--full --out {Path(default_out).as_posix()}/full-rerun"]
    epilog_lines = ["examples:"] + [f"  python -m {prog} {e}".rstrip() for e in examples]
    epilog_lines += [
        "",
        "Results: <out>/results.json (one record per measured cell), <out>/results.md",
        "(Markdown tables and plots) and PNG plots. An interrupted run resumes: rerun the",
        "same command and finished cells are reused as long as the configuration",
        "(schedule, seed, threads, device, data root, command options) is unchanged.",
    ]
    parser = argparse.ArgumentParser(
        prog=f"python -m {prog}",
        description=description,
        epilog="\n".join(epilog_lines),
        formatter_class=_HelpFormatter,
    )
    parser.set_defaults(_default_out=str(default_out))

    sched = parser.add_argument_group("schedule (default: between the two)")
    excl = sched.add_mutually_exclusive_group()
    excl.add_argument("--quick", action="store_true",
                      help="smoke-sized run (minutes on 2 CPU cores); numbers are not "
                           "comparable with the paper")
    excl.add_argument("--full", action="store_true",
                      help="the paper's schedule where the hardware allows it (hours)")

    io = parser.add_argument_group("input/output")
    io.add_argument("--data-root", type=Path, default=_default_data_root(), metavar="DIR",
                    help="root of the data sets (env PYG_HGCONV_DATA overrides the default)")
    io.add_argument("--out", type=Path, default=None, metavar="DIR",
                    help=f"output directory (default: {Path(default_out).as_posix()}/<schedule>)")
    io.add_argument("--fresh", action="store_true",
                    help="do not reuse previous results or training checkpoints in --out "
                         "(they are moved aside, never deleted)")

    run = parser.add_argument_group("run")
    run.add_argument("--seed", type=int, default=0, help="random seed of data order and init")
    run.add_argument("--threads", type=positive_int, default=2,
                     help="torch intra-op threads (part of the protocol: timings depend on it)")
    run.add_argument("--device", default="cpu",
                     help="torch device, e.g. cpu, cuda, cuda:1")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    return parser


def schedule_name(args: argparse.Namespace) -> str:
    """Return ``'quick'``, ``'full'`` or ``'default'`` from parsed arguments."""
    quick, full = getattr(args, "quick", False), getattr(args, "full", False)
    if quick and full:
        raise ValueError("--quick and --full are mutually exclusive")
    return "quick" if quick else "full" if full else "default"


def resolve_out_dir(args: argparse.Namespace) -> Path:
    """Return ``args.out``, or ``<default_out>/<schedule>`` when ``--out`` was not given."""
    if getattr(args, "out", None) is not None:
        return Path(args.out)
    default_out = getattr(args, "_default_out", None)
    if default_out is None:
        raise ValueError("args has neither --out nor a default output directory; "
                         "build the parser with base_parser()")
    return Path(default_out) / schedule_name(args)


def setup_run(args: argparse.Namespace) -> dict[str, Any]:
    """Prepare the process for a benchmark run and describe it.

    Sets ``torch.set_num_threads(args.threads)``, seeds Python, NumPy and torch
    with ``args.seed`` (:func:`~benchmarks.common.training.seed_everything`),
    checks ``args.device``, resolves ``args.out`` in place
    (:func:`resolve_out_dir`) and creates it, and returns
    :func:`~benchmarks.common.results.environment_info`.

    Raises:
        ValueError: for a thread count below 1 or an unavailable device.
    """
    import torch

    from benchmarks.common.results import environment_info
    from benchmarks.common.training import seed_everything

    threads = int(args.threads)
    if threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise ValueError(f"--device: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: CUDA is not available on this machine")
    torch.set_num_threads(threads)
    seed_everything(int(args.seed))
    args.out = resolve_out_dir(args)
    args.out.mkdir(parents=True, exist_ok=True)
    return environment_info(seed=int(args.seed), threads=threads)


def protocol_config(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """The protocol part of a run's configuration, for :class:`ResultStore`.

    Returns ``{"schedule", "seed", "threads", "device", "data_root", **extra}``.
    Pass everything else that changes what a number means as ``extra`` (model
    sizes, input sizes, a ``protocol_version``), but not selectors such as
    ``--study`` that should share one results file (put those in the key).
    """
    config: dict[str, Any] = {
        "schedule": schedule_name(args),
        "seed": int(args.seed),
        "threads": int(args.threads),
        "device": str(args.device),
        "data_root": str(Path(args.data_root).expanduser().resolve()),
    }
    overlap = set(config) & set(extra)
    if overlap:
        raise ValueError(f"protocol_config: {sorted(overlap)} are set from args already")
    config.update(extra)
    return config


def _load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except (AttributeError, OSError):  # no load average on this OS
        return "n/a"


def run_parts(
    args: argparse.Namespace,
    parts: Sequence[str],
    run_part: Callable[[str, Path], Mapping[str, str]],
    *,
    out: Path | None = None,
    verbose: bool = True,
) -> int:
    """Run the named parts of a command (tasks, studies) one after the other.

    Each part writes into ``out / name`` (``out`` defaults to ``args.out``);
    ``run_part(name, out_dir)`` returns its Markdown tables ``{title: table}``,
    which are printed (when
    ``verbose``: rank 0 of a distributed run) with the part's wall time, the
    1-minute load average before and after it (timings on a shared machine
    depend on it) and the files it wrote. Returns the exit status 0.
    """
    for name in parts:
        out_dir = Path(args.out if out is None else out) / name
        tic, load_before = time.perf_counter(), _load_average()
        tables = run_part(name, out_dir)
        if not verbose:
            continue
        for title, table in tables.items():
            print(f"\n## {name}: {title}\n\n{table}")
        print(f"\n{name}: {time.perf_counter() - tic:.0f} s in this call (1-minute load "
              f"average {load_before} before, {_load_average()} after, {os.cpu_count()} "
              f"logical cores); wrote {out_dir / 'results.json'} and "
              f"{out_dir / 'results.md'}", flush=True)
    return 0
