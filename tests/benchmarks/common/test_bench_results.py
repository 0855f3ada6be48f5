"""Atomic files, the resumable ResultStore and the Markdown report layer."""
import json
import os

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from benchmarks.common import results as R
from benchmarks.common.results import (
    VOLATILE_CONFIG_KEYS,
    ResultStore,
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    config_fingerprint,
    environment_info,
    markdown_table,
    run_cells,
    to_jsonable,
    write_report,
)

CONFIG = {"schedule": "quick", "seed": 0, "threads": 2, "sizes": [16, 32]}


def _leftovers(directory):
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


# -- atomic writes ------------------------------------------------------------------------
def test_atomic_write_json_round_trip(tmp_path):
    path = tmp_path / "sub" / "a.json"
    atomic_write_json(path, {"x": (1, 2), "p": tmp_path, "nan": float("nan")})
    assert json.loads(path.read_text()) == {"x": [1, 2], "p": str(tmp_path), "nan": None}
    assert _leftovers(path.parent) == []


@pytest.mark.parametrize("crash_at", ["fsync", "replace"])
def test_crash_mid_write_keeps_previous_file(tmp_path, monkeypatch, crash_at):
    store = ResultStore(tmp_path, CONFIG, ("conv",))
    store.add({"conv": "gcn", "ms": 1.0})
    before = (tmp_path / "results.json").read_bytes()

    def boom(*args, **kwargs):
        raise OSError("simulated crash")

    # fsync happens after the new content was written to the temporary file,
    # replace is the very last step: both are "mid-write" crashes.
    monkeypatch.setattr(R.os, crash_at, boom)
    with pytest.raises(OSError, match="simulated crash"):
        store.add({"conv": "gat", "ms": 2.0})
    monkeypatch.undo()

    assert (tmp_path / "results.json").read_bytes() == before
    data = json.loads(before)
    assert [r["conv"] for r in data["records"]] == ["gcn"]
    assert _leftovers(tmp_path) == []
    # A new store on the directory still resumes the intact record.
    assert ResultStore(tmp_path, CONFIG, ("conv",)).done(conv="gcn")


def test_unserialisable_record_leaves_file_intact(tmp_path):
    store = ResultStore(tmp_path, CONFIG, ("conv",))
    store.add({"conv": "gcn", "ms": 1.0})
    before = (tmp_path / "results.json").read_bytes()
    with pytest.raises(TypeError, match="object"):
        store.add({"conv": "bad", "ms": object()})
    assert (tmp_path / "results.json").read_bytes() == before


def test_keyboard_interrupt_inside_writer_cleans_up(tmp_path):
    path = tmp_path / "report.md"
    atomic_write_text(path, "old")
    with pytest.raises(KeyboardInterrupt), R.atomic_open(path, "w") as f:
        f.write("half of the new")
        raise KeyboardInterrupt
    assert path.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_atomic_torch_save(tmp_path):
    import torch

    path = atomic_torch_save({"w": torch.arange(3)}, tmp_path / "x.pt")
    assert torch.equal(torch.load(path)["w"], torch.arange(3))


# -- ResultStore ----------------------------------------------------------------------------
def test_store_resumes_with_same_config(tmp_path):
    store = ResultStore(tmp_path, CONFIG, ("conv", "size"))
    store.add({"conv": "gcn", "size": 16, "ms": 1.5})
    store.add({"conv": "gcn", "size": 32, "ms": 3.0})
    store.add({"conv": "gcn", "size": 16, "ms": 1.25})  # replaces, same key
    assert len(store) == 2

    # same config in another key order / tuple instead of list -> same protocol
    again = ResultStore(tmp_path, dict(reversed(list({**CONFIG, "sizes": (16, 32)}.items()))),
                        ("conv", "size"))
    assert again.done(conv="gcn", size=16) and again.done(conv="gcn", size=32)
    assert not again.done(conv="gat", size=16)
    assert again.get(conv="gcn", size=16)["ms"] == 1.25
    assert again.stale_path is None and again.num_stale == 0
    assert [r["size"] for r in again.records] == [16, 32]
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["config"]["sizes"] == [16, 32]
    assert on_disk["key_fields"] == ["conv", "size"]
    # volatile keys do not change the protocol
    assert ResultStore(tmp_path, {**CONFIG, "out": "elsewhere"}, ("conv", "size")).done(
        conv="gcn", size=32)


def test_store_does_not_reuse_other_config_and_keeps_stale_file(tmp_path):
    store = ResultStore(tmp_path, CONFIG, ("conv",))
    store.add({"conv": "gcn", "ms": 1.0})
    old = (tmp_path / "results.json").read_bytes()

    other = ResultStore(tmp_path, {**CONFIG, "schedule": "full"}, ("conv",))
    assert not other.done(conv="gcn")
    assert other.records == [] and other.num_stale == 1
    assert other.stale_path is not None and other.stale_path.name.startswith(
        "results.json.stale-")
    assert other.stale_path.read_bytes() == old  # nothing lost
    assert json.loads((tmp_path / "results.json").read_text())["config"]["schedule"] == "full"


def test_store_fresh_moves_everything_aside(tmp_path):
    ResultStore(tmp_path, CONFIG, ("conv",)).add({"conv": "gcn", "ms": 1.0})
    fresh = ResultStore(tmp_path, CONFIG, ("conv",), fresh=True)
    assert not fresh.done(conv="gcn") and fresh.stale_path.exists()
    # a second stale copy in the same second gets its own name
    ResultStore(tmp_path, CONFIG, ("conv",)).add({"conv": "gcn", "ms": 1.0})
    again = ResultStore(tmp_path, CONFIG, ("conv",), fresh=True)
    assert again.stale_path != fresh.stale_path and fresh.stale_path.exists()


def test_store_survives_corrupt_file(tmp_path):
    (tmp_path / "results.json").write_text("{not json")
    store = ResultStore(tmp_path, CONFIG, ("conv",))
    assert store.records == [] and store.stale_path.read_text() == "{not json"


def test_store_validates_keys(tmp_path):
    store = ResultStore(tmp_path, CONFIG, ("conv", "size"))
    with pytest.raises(ValueError, match="key fields"):
        store.add({"conv": "gcn", "ms": 1.0})
    with pytest.raises(ValueError, match="key fields"):
        store.done(conv="gcn")
    with pytest.raises(ValueError, match="reserved"):
        store.add({"conv": "gcn", "size": 1, "_fingerprint": "x"})
    with pytest.raises(TypeError, match="key_fields"):
        ResultStore(tmp_path, CONFIG, "conv")
    with pytest.raises(ValueError, match="duplicates"):
        ResultStore(tmp_path, CONFIG, ("conv", "conv"))


def test_run_cells_measures_only_missing_cells(tmp_path):
    calls = []

    def measure(cell):
        calls.append(cell["conv"])
        if cell["conv"] == "crash":
            raise KeyboardInterrupt
        return {"ms": float(len(cell["conv"]))}

    store = ResultStore(tmp_path, CONFIG, ("conv",))
    cells = [{"conv": "gcn"}, {"conv": "crash"}, {"conv": "spline"}]
    with pytest.raises(KeyboardInterrupt):
        run_cells(store, cells, measure, progress=False)
    assert calls == ["gcn", "crash"]

    calls.clear()
    resumed = ResultStore(tmp_path, CONFIG, ("conv",))
    out = run_cells(resumed, [cells[0], cells[2]], measure, progress=False)
    assert calls == ["spline"]  # gcn was reused
    assert [(r["conv"], r["ms"]) for r in out] == [("gcn", 3.0), ("spline", 6.0)]


# -- fingerprints and JSON ------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                 max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(st.text(min_size=1, max_size=6), json_values, min_size=1, max_size=5),
       st.randoms())
def test_fingerprint_ignores_key_order_but_not_values(config, rnd):
    items = list(config.items())
    rnd.shuffle(items)
    assert config_fingerprint(dict(items)) == config_fingerprint(config)
    stable = [k for k in config if k not in VOLATILE_CONFIG_KEYS]
    assume(stable)
    key = stable[0]
    changed = {**config, key: [config[key], "changed"]}
    assert config_fingerprint(changed) != config_fingerprint(config)
    assert to_jsonable(config) == json.loads(json.dumps(to_jsonable(config)))


def test_to_jsonable_numpy_torch():
    import numpy as np
    import torch

    out = to_jsonable({"a": np.float32(0.5), "b": np.arange(2), "c": torch.tensor(3),
                       "d": {1, 2}, "e": float("inf")})
    assert out == {"a": 0.5, "b": [0, 1], "c": 3, "d": [1, 2], "e": None}
    with pytest.raises(TypeError, match="object"):
        to_jsonable({"x": object()})


# -- Markdown ---------------------------------------------------------------------------------
def test_markdown_table_exact():
    records = [{"conv": "gcn", "ms": 1.234, "acc": 0.9},
               {"conv": "hg|conv", "ms": 12.5, "acc": None}]
    table = markdown_table(records, [("conv", "Conv"), ("ms", "Time (ms)", ".2f"),
                                     ("acc", "Acc", ".1%")])
    assert table == (
        "| Conv     | Time (ms) |   Acc |\n"
        "| :------- | --------: | ----: |\n"
        "| gcn      |      1.23 | 90.0% |\n"
        "| hg\\|conv |     12.50 |     - |"
    )


def test_markdown_table_callable_and_strings():
    table = markdown_table([{"m": "a", "v": "OOM"}, {"m": "b", "v": 2.0}],
                           [("m", "M", lambda s: s.upper()), ("v", "V", ".1f")])
    assert table.splitlines()[1] == "| :-- | :-- |"  # mixed column -> left aligned
    assert table.splitlines()[2:] == ["| A   | OOM |", "| B   | 2.0 |"]
    with pytest.raises(ValueError, match="column"):
        markdown_table([], [("only-field",)])


def test_write_report(tmp_path):
    (tmp_path / "plots").mkdir()
    png = tmp_path / "plots" / "t.png"
    png.write_bytes(b"")
    path = write_report(tmp_path, "Title", {"seed": 0}, {"Speed": "| a |\n| --- |"},
                        environment={"torch": "x"}, plots={"time vs size": png}, notes="N.")
    text = path.read_text()
    assert path.name == "results.md"
    assert text.startswith("# Title\n\nN.\n\n## Speed\n\n| a |\n| --- |\n")
    assert "![time vs size](plots/t.png)" in text
    assert '"seed": 0' in text and '"torch": "x"' in text


def test_environment_info_fields():
    env = environment_info(seed=3, threads=1)
    for key in ("python", "torch", "torch_geometric", "torch_scatter", "torch_sparse",
                "torch_spline_conv", "torch_cluster", "numpy", "platform", "cpu",
                "logical_cores", "torch_threads", "seed", "git_commit", "utc_time",
                "adjacency_backend", "slic_backend", "clustering_backend",
                "products_backend", "products_onednn_min_macs"):
        assert key in env
    assert (env["slic_fallback_reason"] is None) == (env["slic_backend"] == "fused")
    assert ((env["clustering_fallback_reason"] is None)
            == (env["clustering_backend"] == "fused"))
    assert ((env["products_fallback_reason"] is None)
            == (env["products_backend"] == "onednn"))
    assert env["seed"] == 3 and env["threads"] == 1
    assert env["logical_cores"] == os.cpu_count()
    json.dumps(env)  # JSON-able
