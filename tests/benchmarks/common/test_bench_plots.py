"""PNG plots: valid images of the requested size, written atomically."""
import numpy as np
import pytest
from PIL import Image

from benchmarks.common.plots import bar_plot, group_records, line_plot, scatter_plot

RECORDS = [
    {"conv": "gcn", "size": 16, "ms": 1.0, "iqr": 0.1, "gflops": 0.2, "acc": 0.91},
    {"conv": "gcn", "size": 32, "ms": 3.0, "iqr": 0.2, "gflops": 0.8, "acc": None},
    {"conv": "hg", "size": 16, "ms": 2.0, "iqr": 0.1, "gflops": 0.5, "acc": 0.95},
    {"conv": "hg", "size": 32, "ms": 5.0, "iqr": 0.3, "gflops": 2.0, "acc": 0.96},
]


def check_png(path, dpi=100, figsize=(4.0, 3.0)):
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert img.size == (int(figsize[0] * dpi), int(figsize[1] * dpi))
        assert len(np.unique(np.asarray(img.convert("L")))) > 2  # something was drawn
    assert [p for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_scatter_line_bar(tmp_path):
    kw = {"dpi": 100, "figsize": (4.0, 3.0)}
    check_png(scatter_plot(RECORDS, "gflops", "acc", "conv", tmp_path / "s.png",
                           logx=True, title="acc vs GFLOPs", **kw))
    series = group_records(RECORDS, "conv")
    assert list(series) == ["gcn", "hg"] and len(series["hg"]) == 2
    check_png(line_plot(series, "size", "ms", tmp_path / "l.png", yerr="iqr", logx=True,
                        logy=True, **kw))
    check_png(bar_plot(RECORDS, "conv", "ms", tmp_path / "b.png", group="size", error="iqr",
                       **kw))
    check_png(bar_plot(RECORDS, "conv", "ms", tmp_path / "h.png", horizontal=True, **kw))
    # no plottable data still gives a valid (labelled) image
    check_png(scatter_plot([{"conv": "x"}], "gflops", "acc", "conv", tmp_path / "e.png", **kw))


def test_plot_argument_errors(tmp_path):
    with pytest.raises(ValueError, match=r"\.png"):
        scatter_plot(RECORDS, "gflops", "acc", "conv", tmp_path / "s.jpg")
    with pytest.raises(ValueError, match="positive"):
        line_plot({"a": [{"x": -1.0, "y": 1.0}]}, "x", "y", tmp_path / "l.png", logx=True)
