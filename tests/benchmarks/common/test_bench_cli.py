"""The shared command line: options, schedules, output directories, run setup."""
import argparse
from pathlib import Path

import pytest
import torch

from benchmarks.common.cli import (
    base_parser,
    protocol_config,
    resolve_out_dir,
    schedule_name,
    setup_run,
)


def parser():
    return base_parser("benchmarks.demo", "Demo benchmark.", "results/demo")


def test_defaults_and_schedules(monkeypatch, tmp_path):
    monkeypatch.setenv("PYG_HGCONV_DATA", str(tmp_path))
    args = parser().parse_args([])
    assert schedule_name(args) == "default"
    assert (args.seed, args.threads, args.device, args.fresh) == (0, 2, "cpu", False)
    assert args.data_root == tmp_path.resolve()
    assert resolve_out_dir(args) == Path("results/demo/default")
    assert schedule_name(parser().parse_args(["--quick"])) == "quick"
    full = parser().parse_args(["--full", "--out", "x"])
    assert schedule_name(full) == "full" and resolve_out_dir(full) == Path("x")


def test_quick_and_full_are_exclusive(capsys):
    with pytest.raises(SystemExit):
        parser().parse_args(["--quick", "--full"])
    assert "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser().parse_args(["--threads", "0"])


def test_help_has_every_option_and_an_example(capsys):
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for opt in ("--quick", "--full", "--data-root", "--out", "--seed", "--threads",
                "--device", "--fresh"):
        assert opt in text
    assert "python -m benchmarks.demo --quick" in text
    assert "results/demo/<schedule>" in text


def test_setup_run_fixes_threads_seed_and_out(tmp_path):
    old = torch.get_num_threads()
    try:
        args = parser().parse_args(["--quick", "--threads", "1", "--seed", "4",
                                    "--out", str(tmp_path / "o")])
        env = setup_run(args)
        assert torch.get_num_threads() == 1 and env["torch_threads"] == 1
        assert env["seed"] == 4 and args.out.is_dir()
        a = torch.rand(2)
        torch.manual_seed(4)
        assert torch.equal(a, torch.rand(2))
        config = protocol_config(args, sizes=[8])
        assert config["schedule"] == "quick" and config["threads"] == 1
        assert config["sizes"] == [8]
        with pytest.raises(ValueError, match="seed"):
            protocol_config(args, seed=1)
        bad = argparse.Namespace(**{**vars(args), "device": "cuda:3"})
        if not torch.cuda.is_available():
            with pytest.raises(ValueError, match="CUDA"):
                setup_run(bad)
    finally:
        torch.set_num_threads(old)


COMMON = ["--quick", "--no-progress", "--threads", "1", "--seed", "3", "--device", "cpu",
          "--fresh", "--out", "x", "--data-root", "y"]


@pytest.mark.parametrize("module, extra", [
    ("benchmarks.irregular_conv.command", []), ("benchmarks.hgconv_perf", []),
    ("benchmarks.tasks", ["--task", "roads"]), ("benchmarks.ablations", ["--study", "ratio"]),
    ("benchmarks.tvconv.command", ["--study", "faces"]),
])
def test_every_command_takes_the_common_flags(module, extra):
    import importlib

    args = importlib.import_module(module).build_parser().parse_args(COMMON + extra)
    assert (args.quick, args.no_progress, args.threads, args.seed, args.fresh) == (
        True, True, 1, 3, True)
    assert args.out == Path("x") and args.data_root == Path("y")
