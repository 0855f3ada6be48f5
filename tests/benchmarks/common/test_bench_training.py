"""The shared training loop: learning, exact resume, skip-if-finished, schedules."""
import itertools
import json
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn
from torch.utils.data import TensorDataset

from benchmarks.common.training import (
    TrainConfig,
    fit,
    lr_factor,
    make_loader,
    seed_everything,
)

W = torch.randn(8, 1, generator=torch.Generator().manual_seed(42))


def make_data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=g)
    return TensorDataset(x, x @ W + 0.01 * torch.randn(n, 1, generator=g))


def make_model(seed=0):
    torch.manual_seed(seed)
    # Dropout makes the result depend on the global RNG, which resume must reproduce.
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 1))


def mse(model, batch):
    x, y = batch
    loss = nn.functional.mse_loss(model(x), y)
    return loss, {"rmse": loss.detach().sqrt()}


VAL = make_data(32, seed=1)


def evaluate(model):
    x, y = VAL.tensors
    return {"val_mse": nn.functional.mse_loss(model(x), y).item()}


CFG = TrainConfig(epochs=2, batch_size=16, optimizer="sgd", lr=0.05, momentum=0.9,
                  scheduler="step", milestones=(1,), gamma=0.5, progress=False)


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_loss_decreases_and_files_written(tmp_path):
    model = make_model()
    before = evaluate(model)["val_mse"]
    result = fit(model, make_data(), mse, CFG.replace(epochs=4), tmp_path, evaluate=evaluate)
    assert result.epochs == 4 and result.steps == 16 and result.finished
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]
    assert result.metrics["val_mse"] < 0.5 * before
    assert result.metrics == result.history[-1]["metrics"]
    assert set(result.history[0]) >= {"epoch", "loss", "rmse", "lr", "steps", "train_time_s"}
    assert result.train_time_s > 0 and result.resumed_from_epoch == 0
    assert (tmp_path / "checkpoint.pt").exists()
    stored = json.loads((tmp_path / "train_result.json").read_text())
    assert stored["finished"] and stored["epochs"] == 4 and stored["config"]["lr"] == 0.05
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 4 and {"model", "optimizer", "scheduler", "rng"} <= set(ckpt)
    # the step schedule halved the rate after epoch 1
    assert [h["lr"] for h in result.history] == [0.025] * 4


def test_interrupted_run_resumes_bit_for_bit(tmp_path):
    data = make_data()
    reference = make_model()
    ref = fit(reference, data, mse, CFG, tmp_path / "ref", evaluate=evaluate)

    calls = {"n": 0}

    def crashing_loss(model, batch):
        calls["n"] += 1
        if calls["n"] == 6:  # second step of epoch 2
            raise KeyboardInterrupt
        return mse(model, batch)

    model = make_model()
    with pytest.raises(KeyboardInterrupt):
        fit(model, data, crashing_loss, CFG, tmp_path / "run", evaluate=evaluate)
    assert json.loads((tmp_path / "run" / "train_result.json").read_text())["epochs"] == 1

    # a new process: different initial weights, the checkpoint decides
    resumed_model = make_model(seed=123)
    resumed = fit(resumed_model, data, mse, CFG, tmp_path / "run", evaluate=evaluate)
    assert resumed.resumed_from_epoch == 1 and resumed.epochs == 2 and resumed.steps == 8
    assert_same_state(state(resumed_model), state(reference))
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in ref.history]
    assert resumed.metrics == ref.metrics


def test_extending_epochs_equals_uninterrupted_run(tmp_path):
    data = make_data()
    reference = make_model()
    fit(reference, data, mse, CFG, tmp_path / "ref")
    model = make_model()
    first = fit(model, data, mse, CFG.replace(epochs=1), tmp_path / "run")
    assert first.epochs == 1
    second = fit(make_model(seed=7), data, mse, CFG, tmp_path / "run")
    assert second.resumed_from_epoch == 1
    model = make_model(seed=7)
    fit(model, data, mse, CFG, tmp_path / "run")  # finished: only loads
    assert_same_state(state(model), state(reference))


def test_finished_run_is_not_repeated(tmp_path):
    data = make_data()
    trained = make_model()
    first = fit(trained, data, mse, CFG, tmp_path)

    def must_not_train(model, batch):
        raise AssertionError("a finished run was trained again")

    model = make_model(seed=99)
    again = fit(model, data, must_not_train, CFG.replace(progress=True), tmp_path)
    assert again.history == first.history and again.resumed_from_epoch == 2
    assert_same_state(state(model), state(trained))


def test_changed_config_starts_over_and_keeps_old_checkpoint(tmp_path):
    data = make_data()
    fit(make_model(), data, mse, CFG.replace(epochs=1), tmp_path)
    result = fit(make_model(), data, mse, CFG.replace(epochs=1, lr=0.01), tmp_path)
    assert result.resumed_from_epoch == 0
    assert len(list(tmp_path.glob("checkpoint.pt.stale-*"))) == 1
    # poly schedules depend on the total length: more epochs = another schedule
    poly = CFG.replace(epochs=1, scheduler="poly", milestones=())
    fit(make_model(), data, mse, poly, tmp_path / "poly")
    longer = fit(make_model(), data, mse, poly.replace(epochs=2), tmp_path / "poly")
    assert longer.resumed_from_epoch == 0
    # run-only fields neither block resuming nor enter a results protocol
    assert CFG.replace(progress=True, log_every=1).resume_fingerprint() == \
        CFG.resume_fingerprint()
    assert "progress" not in CFG.protocol_dict() and "lr" in CFG.protocol_dict()
    # fresh=True never resumes
    assert fit(make_model(), data, mse, CFG.replace(epochs=1), tmp_path / "poly",
               fresh=True).resumed_from_epoch == 0


def test_max_steps_and_nonfinite_loss(tmp_path):
    data = make_data()
    result = fit(make_model(), data, mse, CFG.replace(epochs=1, max_steps_per_epoch=2),
                 tmp_path / "a")
    assert result.steps == 2

    def nan_loss(model, batch):
        return model(batch[0]).sum() * float("nan")

    with pytest.raises(FloatingPointError, match="non-finite loss"):
        fit(make_model(), data, nan_loss, CFG, tmp_path / "b")
    with pytest.raises(TypeError, match="scalar"):
        fit(make_model(), data, lambda m, b: m(b[0]), CFG, tmp_path / "c")


def test_make_loader_order_is_a_function_of_seed_and_epoch():
    data = make_data(10)

    def order(loader, epoch):
        loader.sampler.set_epoch(epoch)
        return list(loader.sampler)

    a, b = make_loader(data, 4, True, seed=3), make_loader(data, 4, True, seed=3)
    assert order(a, 0) == order(b, 0) and order(a, 1) == order(b, 1)
    assert order(a, 0) != order(a, 1)
    assert list(make_loader(data, 4, False).sampler) == list(range(10))
    x, _y = next(iter(make_loader(data, 4, False)))
    assert x.shape == (4, 8) and torch.equal(x, data.tensors[0][:4])


def test_seed_everything_reproduces():
    seed_everything(5)
    a = torch.rand(3)
    seed_everything(5)
    assert torch.equal(a, torch.rand(3))
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)


@pytest.mark.parametrize("bad,match", [
    ({"epochs": 0}, "epochs"), ({"optimizer": "lbfgs"}, "optimizer"),
    ({"scheduler": "exp"}, "scheduler"), ({"lr": -1.0}, "lr"),
    ({"scheduler": "step"}, "milestones"), ({"milestones": (3, 2)}, "milestones"),
    ({"grad_clip": 0.0}, "grad_clip"), ({"min_lr": 1.0}, "min_lr"),
    ({"seed": -1}, "seed"), ({"device": "tpu9"}, "device"),
])
def test_config_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{"epochs": 1, "batch_size": 2, **bad})


def test_lr_schedules():
    poly = TrainConfig(epochs=2, batch_size=1, lr=0.1, scheduler="poly")
    assert lr_factor(0, poly, 5) == 1.0
    assert math.isclose(lr_factor(5, poly, 5), 0.5 ** 0.9)
    cos = poly.replace(scheduler="cosine", min_lr=0.01)
    assert math.isclose(lr_factor(5, cos, 5), 0.1 + 0.9 * 0.5)
    step = poly.replace(epochs=120, scheduler="step", milestones=(60, 90, 110))
    assert [lr_factor(e * 3, step, 3) for e in (0, 59, 60, 90, 119)] == pytest.approx(
        [1, 1, 0.1, 0.01, 0.001])
    warm = poly.replace(scheduler="none", warmup_iters=4)
    assert [lr_factor(s, warm, 5) for s in range(6)] == [0.25, 0.5, 0.75, 1, 1, 1]


@given(st.sampled_from(["none", "poly", "cosine"]), st.integers(1, 5), st.integers(1, 7),
       st.floats(0, 0.5))
def test_lr_factor_bounded_and_non_increasing(scheduler, epochs, steps, floor):
    cfg = TrainConfig(epochs=epochs, batch_size=1, lr=1.0, min_lr=floor, scheduler=scheduler)
    factors = [lr_factor(s, cfg, steps) for s in range(epochs * steps)]
    assert all(floor - 1e-12 <= f <= 1 + 1e-12 for f in factors)
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(factors))
