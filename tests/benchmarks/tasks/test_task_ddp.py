"""An HG model (data-dependent clustering) trained by two gloo processes through the
task code: the ranks end with identical parameters and the same metrics."""
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]  # spawned children inherit sys.path
import ddp_task_worker  # noqa: E402

from tests.helpers.ddp_launch import run_ranks  # noqa: E402


# Two fresh interpreters import torch, PyG and DDP: ~10 s of CPU each.
@pytest.mark.slow
def test_hg_model_ddp_two_gloo_ranks_stay_identical(tmp_path):
    run_ranks(ddp_task_worker.main, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    params = [r["params"] for r in ranks]
    initial = dict(ddp_task_worker.build().named_parameters())
    assert any(k.startswith("stage4.stage.pool") for k in params[0])  # clustering is trained
    for name, value in params[0].items():
        assert torch.equal(value, params[1][name]), name  # rank 1 started 0.5 away
    moved = [n for n, v in params[0].items() if not torch.equal(v, initial[n].detach())]
    assert len(moved) > len(params[0]) // 2  # the two steps really updated the model
    r0, r1 = (r["record"] for r in ranks)
    assert r0["world_size"] == r1["world_size"] == 2 and r0["steps"] == 2
    assert r0["variant"] == "hg" and r0["dataset"] == "HeterogeneousScenes"
    assert r0["miou"] == r1["miou"]  # rank 0 evaluates and broadcasts
    assert (tmp_path / "run" / "checkpoint.pt").exists()
