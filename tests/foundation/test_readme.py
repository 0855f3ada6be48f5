"""The README stays true: its commands exist and its Python example runs."""
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()


def test_readme_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "README has no Python example"
    example = blocks[0]
    assert len(example.strip().splitlines()) <= 15, "the README promises a 15-line example"
    out = subprocess.run([sys.executable, "-c", example], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[0] == "True"
    assert ' '.join(out[-4:]) == 'torch.Size([2, 32, 24, 32])'


def test_every_readme_python_block_runs():
    for block in re.findall(r"```python\n(.*?)```", README, flags=re.S)[1:]:
        subprocess.run([sys.executable, "-c", block], cwd=REPO, capture_output=True, text=True,
                       check=True)


def test_first_screen_gives_the_two_commands_and_ci_runs_the_test_one():
    first_screen = "\n".join(README.splitlines()[:40])
    assert "make bench" in first_screen and "make test" in first_screen
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^bench:", makefile, flags=re.M) and re.search(r"^test:", makefile,
                                                                     flags=re.M)
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test" in ci and "|| true" not in ci


def test_contributing_example_adds_a_working_graph_conv():
    guide = (REPO / "CONTRIBUTING.md").read_text()
    block = re.findall(r"```python\n(.*?)```", guide, flags=re.S)[0]
    check = block + """
import torch
from pyg_hgconv import HGConvModule
from pyg_hgconv.profile import count_flops
module = HGConvModule(8, num_layers=1, conv="gat").eval()
x = torch.randn(2, 8, 16, 16)
out = module(x)
assert out.shape == x.shape and torch.isfinite(out).all()
count = count_flops(module, x)
assert count.components["graph_conv"] > 0
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True,
                         text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
