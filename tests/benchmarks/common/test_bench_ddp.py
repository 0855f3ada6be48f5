"""fit() with two gloo processes: ranks stay in sync and match one process."""
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.common.training import fit

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE)]  # spawned children inherit sys.path
import ddp_worker  # noqa: E402

from tests.helpers.ddp_launch import run_ranks  # noqa: E402


# Two fresh interpreters import torch and DDP (torch._dynamo): ~10 s of CPU each.
@pytest.mark.slow
def test_ddp_two_gloo_ranks_match_single_process(tmp_path):
    # Both ranks get the environment torchrun would set (RANK, WORLD_SIZE, MASTER_*),
    # so fit() takes exactly its torchrun code path.
    run_ranks(ddp_worker.main, tmp_path)

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    # identical parameters on both ranks (rank 1 started from other weights)
    for k, v in ranks[0]["state"].items():
        assert torch.equal(v, ranks[1]["state"][k]), k
    r0, r1 = ranks[0]["result"], ranks[1]["result"]
    assert r0 == r1  # metrics broadcast from rank 0, losses all-reduced
    assert r0["world_size"] == 2 and r0["steps"] == 3 and r0["history"][0]["steps"] == 3
    assert (tmp_path / "run" / "checkpoint.pt").exists()

    # global batch 8 = 2 ranks x 4: the same updates as one process with batch 8
    model, data, loss, evaluate = ddp_worker.build()
    single = fit(model, data, loss, ddp_worker.CONFIG, tmp_path / "single", evaluate=evaluate)
    assert single.world_size == 1
    for k, v in model.state_dict().items():
        torch.testing.assert_close(ranks[0]["state"][k], v, rtol=1e-5, atol=1e-6)
    assert abs(single.history[0]["loss"] - r0["history"][0]["loss"]) < 1e-5
    assert abs(single.metrics["mse"] - r0["metrics"]["mse"]) < 1e-5
