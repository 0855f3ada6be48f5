"""The HG-Conv core performance command (``python -m benchmarks.hgconv_perf``)."""
import json

from benchmarks.hgconv_perf import QUALITY_RATIOS, TILINGS, candidate_coverage, main


def test_quick_run_writes_every_figure(tmp_path):
    assert main(["--quick", "--out", str(tmp_path)]) == 0
    records = json.loads((tmp_path / "results.json").read_text())["records"]
    memory = next(r for r in records if r["part"] == "memory")
    timing = next(r for r in records if r["part"] == "time")
    quality = [r for r in records if r["part"] == "quality"]
    assert memory["nnz_per_pixel_max"] <= memory["candidates"]
    assert 0 < memory["peak_mib_no_grad"] <= memory["peak_mib_autograd"]
    assert min(timing["hg_ms"], timing["clustering_ms"], timing["grid_ms"]) > 0
    assert timing["ratio"] == timing["hg_ms"] / timing["grid_ms"]
    assert 0.0 <= timing["nearest_centre_coverage"] <= 1.0
    assert "nearest centre among candidates" in (tmp_path / "results.md").read_text()
    # both tilings at both ratios; pooling then unpooling real pixels loses little
    assert {(r["tiling"], r["ratio"]) for r in quality} == {
        (t, ratio) for t in TILINGS for ratio in QUALITY_RATIOS}
    for record in quality:
        assert 0 < record["reconstruction_l1"] < 1 and record["nnz_per_pixel"] >= 1


def test_tile_candidates_keep_the_nearest_centre_of_almost_every_pixel():
    # the default tiling at the benchmark's sizes (64 x 64, ratio 1/64, 12 candidates)
    assert candidate_coverage((2, 1, 64, 64), 64, 12, seed=0) > 0.99
    # and square tiles with SSN's 9
    assert candidate_coverage((2, 1, 64, 64), 64, 9, seed=0) > 0.99
    # as many candidates as centres: always
    assert candidate_coverage((1, 1, 16, 16), 6, 6, seed=1) == 1.0
