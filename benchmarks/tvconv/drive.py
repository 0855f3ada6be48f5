r"""DRIVE study: vessel segmentation with depthwise vs TVConv in a DeepLabV3+ ASPP.

The paper's optic disc/cup experiment (Sec. 4.2) shows TVConv's layout
awareness on fundus images. Here the layout-specific medical task is DRIVE
retinal-vessel segmentation (20 training and 20 test fundus images,
565x584), with the paper's protocol scaled to 2 CPU cores:

* **Network**: :class:`~benchmarks.tvconv.segmentation_net.SegmentationNet`,
  a small DeepLabV3+ whose ASPP branches are inverted residual blocks with a
  depthwise conv or a TVConv (everything else identical).
* **Training**: the 20 training images resized to ``input_size`` (whole
  images, never cropped, so every image keeps the fundus layout the TVConv
  affinity maps learn; the TVConv ``size`` is the ASPP feature size
  ``input_size / 8``), no augmentation (the paper's choice), Adam (the rate
  divided by 5 after 75 % of the epochs, as the paper's 30 of 40),
  loss = BCE + soft Dice, both restricted to the field of view (FOV).
* **Evaluation** on the 20 test images: the network sees the test image at
  ``input_size``; its vessel probability is upsampled bilinearly to the
  original 584x565 and thresholded at 0.5. Dice is computed inside the FOV,
  the Hausdorff distance (HD, and HD95) between the predicted vessels
  (inside the FOV) and the manual ones, in original pixels, per image and
  averaged; also pixel AUC, sensitivity, specificity and accuracy inside the
  FOV (all test pixels pooled). Mean and standard deviation over seeds.
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
from benchmarks.common.metrics import binary_rates, dice, hausdorff_distance, hd95, roc_auc
from benchmarks.common.plots import bar_plot
from benchmarks.common.results import ResultStore, markdown_table, run_cells, write_report
from benchmarks.common.summary import format_mean_std, seed_summary
from benchmarks.common.training import TrainConfig, fit, seed_everything
from benchmarks.tvconv.segmentation_net import SegmentationNet

NAME = "drive"
PROTOCOL_VERSION = 1
CONVS = ("depthwise", "tvconv")
METRICS = ("dice", "hd", "hd95", "auc", "sensitivity", "specificity", "accuracy")
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DriveSchedule:
    """What one schedule of the DRIVE study trains.

    Args:
        seeds: training seeds per conv: ``seed, seed + 1, ...``.
        epochs, batch_size, lr: Adam schedule (lr / 5 after 75 % of the epochs; the paper
            uses 1e-3 for 40 epochs of more data, our 20 images need a larger rate).
        input_size: side of the square network input (the images are resized).
        aspp_channels: channels of the ASPP branches and the decoder.
        aspp_depths: inverted residual blocks per ASPP branch.
        expand_ratio: expansion of those blocks.
        generator_hidden_channels, generator_hidden_layers, affinity_channels:
            the TVConv weight-generating block (paper: 64, 3, 4).
        max_steps_per_epoch: cap on steps per epoch (quick runs).
        max_test_images: evaluate on the first this many test images (``None``: all 20).
    """

    seeds: int
    epochs: int
    batch_size: int = 4
    lr: float = 1e-3
    input_size: int = 256
    aspp_channels: int = 48
    aspp_depths: tuple[int, ...] = (1, 2, 3)
    expand_ratio: int = 2
    generator_hidden_channels: int = 64
    generator_hidden_layers: int = 3
    affinity_channels: int = 4
    max_steps_per_epoch: int | None = None
    max_test_images: int | None = None

    def tvconv_kwargs(self) -> dict[str, int]:
        """Keyword arguments of every ASPP :class:`~tvconv.TVConv`."""
        return {"hidden_channels": self.generator_hidden_channels,
                "hidden_layers": self.generator_hidden_layers,
                "affinity_channels": self.affinity_channels}

    def milestones(self) -> tuple[int, ...]:
        """Epoch after which the learning rate is divided by 5 (75 % of the epochs)."""
        return (max(1, round(0.75 * self.epochs)),)


SCHEDULES = {
    "quick": DriveSchedule(seeds=1, epochs=1, batch_size=2, input_size=64, aspp_channels=16,
                           aspp_depths=(1, 1, 1), generator_hidden_channels=8,
                           generator_hidden_layers=0, max_steps_per_epoch=2,
                           max_test_images=2),
    # sized for ~15 minutes on a shared 2-core machine (1 thread)
    "default": DriveSchedule(seeds=3, epochs=30, lr=5e-3, generator_hidden_channels=32,
                             generator_hidden_layers=1),
    "full": DriveSchedule(seeds=5, epochs=80, lr=3e-3, input_size=384, aspp_channels=64),
}


def build_model(conv: str, schedule: DriveSchedule) -> SegmentationNet:
    """The segmentation network of one cell."""
    return SegmentationNet(conv, schedule.input_size, aspp_channels=schedule.aspp_channels,
                           aspp_depths=schedule.aspp_depths, expand_ratio=schedule.expand_ratio,
                           tvconv_kwargs=schedule.tvconv_kwargs() if conv == "tvconv" else None)


def vessel_loss(model: nn.Module, batch: tuple[Tensor, Tensor, Tensor]
                ) -> tuple[Tensor, dict[str, float]]:
    r"""BCE + soft Dice loss inside the field of view.

    .. math::
        \mathcal{L} = \frac{\sum_p v_p \,\mathrm{BCE}(z_p, y_p)}{\sum_p v_p}
        + 1 - \frac{2 \sum_p v_p \sigma(z_p) y_p + 1}{\sum_p v_p (\sigma(z_p) + y_p) + 1}

    with logits :math:`z`, vessel mask :math:`y` and FOV mask :math:`v`.
    """
    images, vessels, fov = batch
    logits = model(images.contiguous(memory_format=torch.channels_last))[:, 0]
    bce = F.binary_cross_entropy_with_logits(logits, vessels, weight=fov, reduction="sum")
    bce = bce / fov.sum().clamp_min(1.0)
    prob = torch.sigmoid(logits) * fov
    soft_dice = (2 * (prob * vessels).sum() + 1) / (prob.sum() + (vessels * fov).sum() + 1)
    return bce + (1 - soft_dice), {"bce": float(bce.detach()),
                                   "soft_dice": float(soft_dice.detach())}


def load_data(data_root: Path, schedule: DriveSchedule) -> dict[str, Any]:
    """Training set at ``input_size``; test set at ``input_size`` (network input) and at
    the original size (ground truth)."""
    from tvconv.datasets import DRIVE

    size = (schedule.input_size, schedule.input_size)
    train = DRIVE(data_root, "training", size=size, normalize=True, mask_dtype=torch.float32)
    test_in = DRIVE(data_root, "test", size=size, normalize=True)
    test_gt = DRIVE(data_root, "test")
    count = len(test_gt) if schedule.max_test_images is None else schedule.max_test_images
    return {"train": train,
            "test_images": torch.stack([test_in[i][0] for i in range(count)]),
            "test_vessels": torch.stack([test_gt[i][1] for i in range(count)]).bool(),
            "test_fov": torch.stack([test_gt[i][2] for i in range(count)]).bool()}


@torch.no_grad()
def predict(model: nn.Module, images: Tensor, out_size: tuple[int, int],
            batch_size: int = 4) -> Tensor:
    """Vessel probabilities ``[N, *out_size]`` (logits upsampled bilinearly, then sigmoid)."""
    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    try:
        probs = []
        for chunk in images.split(batch_size):
            logits = model(chunk.to(device).contiguous(memory_format=torch.channels_last))
            logits = F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
            probs.append(torch.sigmoid(logits[:, 0]).cpu())
    finally:
        model.train(was_training)
    return torch.cat(probs)


def evaluate_drive(model: nn.Module, data: dict[str, Any]) -> dict[str, float]:
    """Dice, HD, HD95, AUC and pixel rates of the test images (see the module docstring)."""
    vessels, fov = data["test_vessels"], data["test_fov"]
    prob = predict(model, data["test_images"], tuple(vessels.shape[-2:]))
    pred = (prob > 0.5) & fov
    rates = binary_rates(pred, vessels, valid=fov)
    return {"dice": dice(pred, vessels, valid=fov),
            "hd": hausdorff_distance(pred, vessels),
            "hd95": hd95(pred, vessels),
            "auc": roc_auc(prob, vessels, valid=fov),
            "sensitivity": rates["sensitivity"], "specificity": rates["specificity"],
            "accuracy": rates["accuracy"]}


def run_dir(out_dir: Path, cell: dict) -> Path:
    """Training directory (checkpoint, history) of one cell."""
    return out_dir / "runs" / f"{cell['conv']}_seed{cell['seed']}"


def train_cell(cell: dict, schedule: DriveSchedule, data: dict, out_dir: Path, *,
               progress: bool = True, fresh: bool = False,
               device: str = "cpu") -> dict[str, Any]:
    """Train and evaluate one (conv, seed) model; return its record fields."""
    from tvconv import count_macs, count_params

    seed_everything(cell["seed"])
    model = build_model(cell["conv"], schedule).to(memory_format=torch.channels_last)
    config = TrainConfig(epochs=schedule.epochs, batch_size=schedule.batch_size,
                         optimizer="adam", lr=schedule.lr, scheduler="step",
                         milestones=schedule.milestones(), gamma=0.2, seed=cell["seed"],
                         max_steps_per_epoch=schedule.max_steps_per_epoch,
                         eval_every=schedule.epochs, progress=progress, device=device)
    result = fit(model, data["train"], vessel_loss, config, run_dir(out_dir, cell),
                 evaluate=lambda m: evaluate_drive(m, data), fresh=fresh)
    shape = (1, 3, schedule.input_size, schedule.input_size)
    return {**{k: result.metrics[k] for k in METRICS},
            "test_images": int(data["test_images"].shape[0]),
            "train_loss": result.final_loss, "epochs": result.epochs,
            "train_time_s": result.train_time_s,
            "macs_g": count_macs(model, shape) / 1e9,
            "params_m": count_params(model) / 1e6,
            "params_cached_m": count_params(model, cached=True) / 1e6}


def plot_affinity(out_dir: Path, schedule: DriveSchedule, cell: dict) -> Path:
    """Draw the ASPP affinity maps of the trained TVConv network of ``cell``."""
    from tvconv.viz import plot_affinity_maps

    model = build_model("tvconv", schedule)
    state = torch.load(run_dir(out_dir, cell) / "checkpoint.pt", map_location="cpu",
                       weights_only=True)
    model.load_state_dict(state["model"])
    return plot_affinity_maps(model, out_dir / "drive_affinity_maps.png",
                              title=f"Learned ASPP affinity maps, DRIVE (seed {cell['seed']})")


def report(records: list[dict], schedule: DriveSchedule, config: dict, env: dict,
           out_dir: Path, figures: dict[str, Path]) -> dict[str, str]:
    """Print and write the tables, plots and ``results.md`` of the DRIVE study."""
    summary = seed_summary(records, ("conv",), (*METRICS, "train_time_s"))

    for row in summary:
        for field, scale, digits in (("dice", 100, 2), ("hd", 1, 1), ("hd95", 1, 1),
                                     ("auc", 100, 2)):
            row[f"{field}_pm"] = format_mean_std(row, field, scale=scale, digits=digits)
    tables = {
        "DRIVE test set (mean ± std over seeds)": markdown_table(summary, [
            ("conv", "ASPP conv"), ("dice_pm", "Dice (%) ↑"), ("hd_pm", "HD (px) ↓"),
            ("hd95_pm", "HD95 (px) ↓"), ("auc_pm", "AUC (%) ↑"),
            ("sensitivity_mean", "sensitivity", ".3f"),
            ("specificity_mean", "specificity", ".3f"), ("accuracy_mean", "accuracy", ".3f"),
            ("macs_g", "GMACs", ".3f"), ("params_m", "params train (M)", ".2f"),
            ("params_cached_m", "params cached (M)", ".2f"), ("seeds", "seeds"),
            ("train_time_s_mean", "train s/model", ".0f")]),
        "Per seed": markdown_table(records, [
            ("conv", "ASPP conv"), ("seed", "seed"), ("dice", "Dice", ".4f"),
            ("hd", "HD", ".1f"), ("hd95", "HD95", ".1f"), ("auc", "AUC", ".4f"),
            ("train_loss", "final loss", ".3f"), ("train_time_s", "train s", ".0f")]),
    }
    by_conv = {row["conv"]: row for row in summary}
    if set(CONVS) <= set(by_conv):
        dw, tv = by_conv["depthwise"], by_conv["tvconv"]
        tables["TVConv minus depthwise"] = markdown_table([{
            "dice": 100 * (tv["dice_mean"] - dw["dice_mean"]),
            "hd": tv["hd_mean"] - dw["hd_mean"], "hd95": tv["hd95_mean"] - dw["hd95_mean"],
            "auc": 100 * (tv["auc_mean"] - dw["auc_mean"])}], [
            ("dice", "Dice (points)", "+.2f"), ("hd", "HD (px)", "+.1f"),
            ("hd95", "HD95 (px)", "+.1f"), ("auc", "AUC (points)", "+.2f")])
    plots = {
        "Dice per ASPP conv": bar_plot(summary, "conv", "dice_mean", out_dir / "drive_dice.png",
                                       error="dice_std", title="DRIVE test Dice (FOV)",
                                       ylabel="Dice"),
        "Hausdorff distance per ASPP conv": bar_plot(
            summary, "conv", "hd95_mean", out_dir / "drive_hd95.png", error="hd95_std",
            title="DRIVE test HD95 (original pixels)", ylabel="HD95 (px)"),
        **figures,
    }
    notes = (
        f"DeepLabV3+-style network (ASPP of inverted residual blocks, branch depths "
        f"{list(schedule.aspp_depths)}, {schedule.aspp_channels} channels) trained on the 20 "
        f"DRIVE training images resized to {schedule.input_size}x{schedule.input_size} "
        f"(whole images, no augmentation), {schedule.epochs} epochs of Adam (lr "
        f"{schedule.lr:g}), "
        f"{schedule.seeds} seeds; TVConv size {schedule.input_size // 8}x"
        f"{schedule.input_size // 8} (the ASPP feature size), weight-generating block with "
        f"{schedule.generator_hidden_channels} channels and "
        f"{schedule.generator_hidden_layers + 1} hidden blocks (paper: 64 and 4). Metrics on "
        f"the {records[0]['test_images'] if records else 0} test images at the original "
        f"584x565 resolution. Schedule '{config['schedule']}'.")
    write_report(out_dir, "TVConv benchmark: DRIVE vessel segmentation", config, tables,
                 environment=env, plots=plots, notes=notes)
    return tables


def run(args: argparse.Namespace, env: dict, out_dir: Path) -> dict[str, str]:
    """Run (or resume) the DRIVE study into ``out_dir``; return its Markdown tables."""
    schedule = SCHEDULES[schedule_name(args)]
    config = protocol_config(args, study=NAME, protocol_version=PROTOCOL_VERSION,
                             **dataclasses.asdict(schedule))
    store = ResultStore(out_dir, config, ("conv", "seed"), environment=env, fresh=args.fresh)
    data = load_data(Path(args.data_root), schedule)
    cells = [{"conv": conv, "seed": args.seed + i}
             for i in range(schedule.seeds) for conv in CONVS]
    progress = not args.no_progress
    records = run_cells(store, cells,
                        lambda cell: train_cell(cell, schedule, data, out_dir,
                                                progress=progress, fresh=args.fresh,
                                                device=args.device),
                        desc="drive", progress=progress)
    figures = {}
    first_tv = next(c for c in cells if c["conv"] == "tvconv")
    try:
        figures["Learned ASPP affinity maps"] = plot_affinity(out_dir, schedule, first_tv)
    except FileNotFoundError:
        log.warning("no checkpoint for %s: affinity-map figure skipped", first_tv)
    return report(records, schedule, config, env, out_dir, figures)
