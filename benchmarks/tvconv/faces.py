r"""ORL face study: MobileNetV2 with depthwise convs vs TVConv, per width and seed.

Setup (TVConv paper, Sec. 4.1, scaled to 2 CPU cores):

* **Data**: the ORL / AT&T faces (40 identities x 10 aligned grey 92x112
  images), resized to 96x96 (stretched, :class:`~pyg_hgconv.datasets.ORLFaces`).
  A fixed seeded split *by image* (``split_seed``): 7 training images per
  identity (280) and the other 3 held out (120). Augmentation: horizontal
  flip only (the paper's), never a crop, so the face layout stays aligned.
* **Model**: the face MobileNetV2 of :func:`tvconv.models.mobilenet_v2`
  (512-d embedding) with ``conv="depthwise"`` or ``"tvconv"`` (every
  depthwise conv replaced), one grey input channel, AM-Softmax loss
  (m = 0.35, s = 32) on the embedding, SGD with momentum 0.9 and weight
  decay 5e-4 (paper), a cosine learning-rate schedule and the gradient norm
  clipped to 5: with 280 images and a few hundred steps, unclipped SGD at
  lr 0.1 diverged early in some seeds (measured on the default schedule:
  depthwise x0.1 identification 45 +- 13 % unclipped, 78 +- 6 % clipped).
* **Metrics** on the held-out images (the model in eval mode, TVConv
  kernels cached):

  - ``ident_acc``: closed-set identification, nearest neighbour by cosine
    similarity against the 280 training images as gallery;
  - ``ident_head_acc``: identification by the AM-Softmax class weights;
  - ``verif_acc``: verification accuracy of the balanced held-out pairs
    (all 120 genuine pairs of the 120 test images and 120 seeded impostor
    pairs), 10-fold cross-validated threshold (the LFW protocol).

  Every (conv, width, seed) cell is one trained model; the report gives the
  mean and sample standard deviation over the seeds (``seed`` changes the
  initialisation and the data order, not the split).

The affinity maps of the trained TVConv model at the smallest width (first
seed) are drawn with :func:`tvconv.viz.plot_affinity_maps` (paper Fig. 6).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.common.cli import protocol_config, schedule_name
from benchmarks.common.metrics import identification_accuracy, verification_accuracy
from benchmarks.common.plots import line_plot
from benchmarks.common.results import ResultStore, markdown_table, run_cells, write_report
from benchmarks.common.summary import format_mean_std, seed_summary
from benchmarks.common.training import TrainConfig, fit, seed_everything

NAME = "faces"
PROTOCOL_VERSION = 1
CONVS = ("depthwise", "tvconv")
METRICS = ("ident_acc", "ident_head_acc", "verif_acc")
#: widths at which TVConv is expected to beat depthwise on accuracy (the paper's claim)
GOAL_WIDTHS = (0.1, 0.2)
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class FacesSchedule:
    """What one schedule of the face study trains.

    Args:
        widths: MobileNetV2 width multipliers.
        seeds: training seeds per (conv, width): ``seed, seed + 1, ...``.
        epochs, batch_size, lr, weight_decay, warmup_iters, grad_clip,
            max_steps_per_epoch: the SGD schedule (cosine decay).
        input_size: side of the square input images.
        stem_stride: stride of the first conv (1 in the paper).
        generator_hidden_channels, generator_hidden_layers, affinity_channels:
            the TVConv weight-generating block (paper: 64, 3, 4).
        train_per_identity: training images per identity (the rest is held out).
        split_seed: seed of the split by image.
        eval_batch_size: images per forward pass when embedding.
    """

    widths: tuple[float, ...]
    seeds: int
    epochs: int
    batch_size: int
    lr: float
    optimizer: str = "sgd"
    input_size: int = 96
    stem_stride: int = 1
    generator_hidden_channels: int = 64
    generator_hidden_layers: int = 3
    affinity_channels: int = 4
    weight_decay: float = 5e-4
    warmup_iters: int = 0
    grad_clip: float | None = None
    max_steps_per_epoch: int | None = None
    train_per_identity: int = 7
    split_seed: int = 0
    eval_batch_size: int = 60

    def tvconv_kwargs(self) -> dict[str, int]:
        """Keyword arguments of every :class:`~tvconv.TVConv` of the backbone."""
        return {"hidden_channels": self.generator_hidden_channels,
                "hidden_layers": self.generator_hidden_layers,
                "affinity_channels": self.affinity_channels}


SCHEDULES = {
    "quick": FacesSchedule(widths=(0.1,), seeds=2, epochs=1, batch_size=16, lr=0.05,
                           input_size=32, stem_stride=2, generator_hidden_channels=8,
                           generator_hidden_layers=0, max_steps_per_epoch=2, grad_clip=5.0),
    # the two widths of the accuracy goal, sized for 2 CPU cores (1 thread); the
    # study's report prints the training time of every run
    "default": FacesSchedule(widths=(0.1, 0.2), seeds=3, epochs=16, batch_size=32,
                             lr=0.1, stem_stride=2, generator_hidden_channels=32,
                             generator_hidden_layers=1, warmup_iters=20, grad_clip=5.0),
    "full": FacesSchedule(widths=(0.1, 0.2, 0.3, 0.5, 1.0), seeds=5, epochs=60,
                          batch_size=32, lr=0.1, warmup_iters=50, grad_clip=5.0),
}


class FaceRecognizer(nn.Module):
    """A face-embedding backbone followed by the AM-Softmax classifier head.

    ``forward(images [B, 1, H, W], labels [B] or None) -> logits [B, num_classes]``
    (with the additive margin on the true class when ``labels`` are given);
    :meth:`embed` returns the ``[B, 512]`` embeddings.
    """

    def __init__(self, width: float, conv: str, num_classes: int, schedule: FacesSchedule):
        super().__init__()
        from tvconv.models import AMSoftmax, mobilenet_v2

        self.embedder = mobilenet_v2(width, conv, input_size=schedule.input_size,
                                     stem_stride=schedule.stem_stride, in_channels=1,
                                     tvconv_kwargs=schedule.tvconv_kwargs()
                                     if conv == "tvconv" else None)
        self.head = AMSoftmax(self.embedder.embedding_dim, num_classes, margin=0.35, scale=32.0)

    def embed(self, images: Tensor) -> Tensor:
        return self.embedder(images.contiguous(memory_format=torch.channels_last))

    def forward(self, images: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.head.logits(self.embed(images), labels)


def face_loss(model: nn.Module, batch: tuple[Tensor, Tensor]) -> tuple[Tensor, dict[str, float]]:
    """AM-Softmax loss of a batch ``(images, labels)``; logs the (margin) training accuracy."""
    images, labels = batch
    logits = model(images, labels)
    accuracy = (logits.argmax(1) == labels).float().mean()
    return F.cross_entropy(logits, labels), {"train_acc": float(accuracy)}


@torch.no_grad()
def embed_all(model: FaceRecognizer, dataset, batch_size: int) -> tuple[Tensor, Tensor]:
    """Embeddings ``[N, 512]`` and labels ``[N]`` of every item of ``dataset`` (eval mode)."""
    device = next(model.parameters()).device
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    embeddings = torch.cat([model.embed(chunk.to(device)).cpu()
                            for chunk in images.split(batch_size)])
    return embeddings, dataset.labels


def evaluate_faces(model: FaceRecognizer, gallery, probes, batch_size: int) -> dict[str, float]:
    """Identification and verification accuracy of the held-out ``probes``."""
    was_training = model.training
    model.eval()
    try:
        gallery_emb, gallery_labels = embed_all(model, gallery, batch_size)
        probe_emb, probe_labels = embed_all(model, probes, batch_size)
        a, b, same = probes.verification_pairs(seed=0)
        with torch.no_grad():
            head_logits = model.head.logits(probe_emb.to(model.head.weight.device)).cpu()
    finally:
        model.train(was_training)
    return {
        "ident_acc": identification_accuracy(probe_emb, probe_labels, gallery=gallery_emb,
                                             gallery_labels=gallery_labels),
        "ident_head_acc": identification_accuracy(head_logits, probe_labels),
        "verif_acc": verification_accuracy(probe_emb[a], probe_emb[b], same, num_folds=10,
                                           seed=0),
        "verif_pairs": int(same.numel()),
    }


def load_splits(data_root: Path, schedule: FacesSchedule) -> dict[str, Any]:
    """The seeded ORL split: ``train`` (flip-augmented), ``gallery`` (the same images,
    not augmented) and ``test``."""
    from pyg_hgconv.datasets import JointAugment
    from tvconv.datasets import ORLFaces

    common = {"root": data_root, "size": schedule.input_size, "seed": schedule.split_seed,
              "train_per_identity": schedule.train_per_identity, "normalize": True}
    flip_only = JointAugment(hflip=0.5, scale=(1.0, 1.0))
    return {"train": ORLFaces(split="train", augment=flip_only, **common),
            "gallery": ORLFaces(split="train", **common),
            "test": ORLFaces(split="test", **common)}


def run_dir(out_dir: Path, cell: dict) -> Path:
    """Training directory (checkpoint, history) of one cell."""
    return out_dir / "runs" / f"{cell['conv']}_x{cell['width']:g}_seed{cell['seed']}"


def train_cell(cell: dict, schedule: FacesSchedule, data: dict, out_dir: Path, *,
               progress: bool = True, fresh: bool = False,
               device: str = "cpu") -> dict[str, Any]:
    """Train and evaluate one (conv, width, seed) model; return its record fields."""
    from tvconv import count_macs, count_params

    seed_everything(cell["seed"])
    model = FaceRecognizer(cell["width"], cell["conv"], data["train"].num_classes, schedule)
    model.to(memory_format=torch.channels_last)
    config = TrainConfig(epochs=schedule.epochs, batch_size=schedule.batch_size,
                         optimizer=schedule.optimizer, lr=schedule.lr, momentum=0.9,
                         weight_decay=schedule.weight_decay, scheduler="cosine",
                         warmup_iters=schedule.warmup_iters, grad_clip=schedule.grad_clip,
                         seed=cell["seed"],
                         max_steps_per_epoch=schedule.max_steps_per_epoch,
                         eval_every=schedule.epochs, progress=progress, device=device)
    result = fit(model, data["train"], face_loss, config, run_dir(out_dir, cell),
                 evaluate=lambda m: evaluate_faces(m, data["gallery"], data["test"],
                                                   schedule.eval_batch_size),
                 fresh=fresh)
    shape = (1, 1, schedule.input_size, schedule.input_size)
    return {
        **{k: result.metrics[k] for k in METRICS},
        "verif_pairs": int(result.metrics["verif_pairs"]),
        "train_loss": result.final_loss,
        "train_acc": result.history[-1].get("train_acc"),
        "epochs": result.epochs,
        "train_time_s": result.train_time_s,
        "macs_m": count_macs(model.embedder, shape) / 1e6,
        "params_m": count_params(model.embedder) / 1e6,
        "params_cached_m": count_params(model.embedder, cached=True) / 1e6,
    }


def plot_affinity(out_dir: Path, schedule: FacesSchedule, cell: dict, num_classes: int) -> Path:
    """Draw the affinity maps of the trained TVConv model of ``cell`` (from its checkpoint)."""
    from tvconv.viz import plot_affinity_maps

    checkpoint = run_dir(out_dir, cell) / "checkpoint.pt"
    model = FaceRecognizer(cell["width"], "tvconv", num_classes, schedule)
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    return plot_affinity_maps(
        model.embedder, out_dir / f"affinity_maps_x{cell['width']:g}.png", max_layers=9,
        title=f"Learned affinity maps, MobileNetV2 x{cell['width']:g} TVConv, ORL "
              f"(seed {cell['seed']}), shallow -> deep")


def goal_rows(summary: list[dict]) -> list[dict]:
    """Per width: TVConv minus depthwise mean accuracy, and whether TVConv is better."""
    by_key = {(r["conv"], r["width"]): r for r in summary}
    rows = []
    for width in sorted({r["width"] for r in summary}):
        dw, tv = by_key.get(("depthwise", width)), by_key.get(("tvconv", width))
        if dw is None or tv is None:
            continue
        row = {"width": width, "goal": width in GOAL_WIDTHS}
        for metric in ("ident_acc", "verif_acc"):
            row[f"{metric}_gain"] = tv[f"{metric}_mean"] - dw[f"{metric}_mean"]
        row["tvconv_better"] = row["ident_acc_gain"] > 0 and row["verif_acc_gain"] >= 0
        rows.append(row)
    return rows


def report(records: list[dict], schedule: FacesSchedule, config: dict, env: dict,
           out_dir: Path, figures: dict[str, Path]) -> dict[str, str]:
    """Print and write the tables, plots and ``results.md`` of the face study."""
    summary = seed_summary(records, ("conv", "width"), (*METRICS, "train_time_s"))
    for row in summary:  # formatted "mean ± std" columns
        for metric in METRICS:
            row[f"{metric}_pm"] = format_mean_std(row, metric, scale=100)
    tables = {
        "ORL accuracy (mean ± std over seeds, %)": markdown_table(summary, [
            ("conv", "conv"), ("width", "width", "g"), ("macs_m", "MACs (M)", ".2f"),
            ("params_m", "params train (M)", ".2f"), ("params_cached_m", "params cached (M)",
                                                      ".2f"),
            ("ident_acc_pm", "identification (NN)"), ("ident_head_acc_pm", "identification "
                                                                         "(head)"),
            ("verif_acc_pm", "verification"), ("seeds", "seeds"),
            ("train_time_s_mean", "train s/model", ".0f")]),
        "TVConv minus depthwise (percentage points)": markdown_table(goal_rows(summary), [
            ("width", "width", "g"),
            ("ident_acc_gain", "identification", lambda v: f"{100 * v:+.1f}"),
            ("verif_acc_gain", "verification", lambda v: f"{100 * v:+.1f}"),
            ("tvconv_better", "TVConv better"),
            ("goal", "goal width (x0.1, x0.2)")]),
        "Per seed": markdown_table(records, [
            ("conv", "conv"), ("width", "width", "g"), ("seed", "seed"),
            ("ident_acc", "identification", ".3f"), ("ident_head_acc", "ident. (head)", ".3f"),
            ("verif_acc", "verification", ".3f"), ("train_loss", "final loss", ".3f"),
            ("train_time_s", "train s", ".0f")]),
    }
    series = {conv: [r for r in summary if r["conv"] == conv] for conv in CONVS}
    plots = {
        "Identification accuracy vs width": line_plot(
            series, "width", "ident_acc_mean", out_dir / "faces_identification.png",
            yerr="ident_acc_std", title="ORL identification (NN, held-out images)",
            xlabel="MobileNetV2 width", ylabel="accuracy"),
        "Verification accuracy vs width": line_plot(
            series, "width", "verif_acc_mean", out_dir / "faces_verification.png",
            yerr="verif_acc_std", title="ORL verification (held-out pairs, 10-fold)",
            xlabel="MobileNetV2 width", ylabel="accuracy"),
        "Identification accuracy vs MACs": line_plot(
            series, "macs_m", "ident_acc_mean", out_dir / "faces_accuracy_macs.png",
            yerr="ident_acc_std", title="ORL identification vs complexity",
            xlabel="MACs (M) per image", ylabel="accuracy"),
        **figures,
    }
    notes = (
        f"MobileNetV2 face models trained on the ORL split (7 images per identity for "
        f"training, 3 held out; split seed {schedule.split_seed}) at "
        f"{schedule.input_size}x{schedule.input_size}, widths "
        f"{', '.join(f'x{w:g}' for w in schedule.widths)}, {schedule.seeds} seeds, "
        f"{schedule.epochs} epochs of SGD (lr {schedule.lr:g}, cosine"
        + (f", gradient norm clipped to {schedule.grad_clip:g}" if schedule.grad_clip else "")
        + "), AM-Softmax "
        f"(m = 0.35, s = 32), flip augmentation. Stem stride {schedule.stem_stride} "
        f"(the paper uses 1); TVConv weight-generating block with "
        f"{schedule.generator_hidden_channels} channels and "
        f"{schedule.generator_hidden_layers + 1} hidden blocks (paper: 64 and 4). "
        f"Schedule '{config['schedule']}'"
        + (f"; --full trains widths {', '.join(f'x{w:g}' for w in SCHEDULES['full'].widths)} "
           f"with the paper's stride-1 stem and generator, {SCHEDULES['full'].seeds} seeds "
           f"and {SCHEDULES['full'].epochs} epochs." if config["schedule"] != "full" else ".")
        + " ORL is a small closed-set benchmark: these numbers are not comparable with the "
          "paper's LFW results.")
    write_report(out_dir, "TVConv benchmark: ORL faces", config, tables, environment=env,
                 plots=plots, notes=notes)
    return tables


def run(args: argparse.Namespace, env: dict, out_dir: Path) -> dict[str, str]:
    """Run (or resume) the face study into ``out_dir``; return its Markdown tables."""
    schedule = SCHEDULES[schedule_name(args)]
    config = protocol_config(args, study=NAME, protocol_version=PROTOCOL_VERSION,
                             **dataclasses.asdict(schedule))
    store = ResultStore(out_dir, config, ("conv", "width", "seed"), environment=env,
                        fresh=args.fresh)
    data = load_splits(Path(args.data_root), schedule)
    cells = [{"conv": conv, "width": width, "seed": args.seed + i}
             for width in schedule.widths for i in range(schedule.seeds) for conv in CONVS]
    progress = not args.no_progress
    records = run_cells(store, cells,
                        lambda cell: train_cell(cell, schedule, data, out_dir,
                                                   progress=progress, fresh=args.fresh,
                                                   device=args.device),
                        desc="faces", progress=progress)
    figures = {}
    first_tv = next(c for c in cells if c["conv"] == "tvconv")
    try:
        figures["Learned affinity maps"] = plot_affinity(out_dir, schedule, first_tv,
                                                         data["train"].num_classes)
    except FileNotFoundError:
        log.warning("no checkpoint for %s: affinity-map figure skipped", first_tv)
    return report(records, schedule, config, env, out_dir, figures)
