"""The LightningModule: one training step for either task, AdamW with the paper's step schedule, and a validation
that decodes heatmaps to image coordinates and computes the PoseTrack mAP table.

Task (from `data.task`):
- propagation: in validation (and inference) the auxiliary heatmaps fed to TKS/DAM are the LABELS of the aux frames
  (`batch["aux_heatmaps"]`); in training too with `data.aux_inputs: labels`, while with `data.aux_inputs:
  predictions` (paper Sec. 4.2, PoseWarper's USE_GT_INPUT_TEST) training feeds the model's own predictions;
- estimation: the model uses its own predictions on the neighbour frames (`aux_heatmaps=None`).
With MI, every `model.mi_grad_log_every` steps the ratio of the MI gradient norm to the L_H gradient norm is logged
for the single-frame part (backbone + head) and the temporal modules: `train/grad_ratio_backbone`,
`train/grad_ratio_temporal` (docs/training.md).
Every loss term returned by `StdposeLoss` is logged as `train/<term>` (and `val/<term>`); validation logs
`val/mAP` and `val/<Group>` (Head ... Ankle) for TensorBoard and for the best-checkpoint callback.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from stdpose.engine import validation
from stdpose.skeleton import GROUP_NAMES


def model_config(cfg: dict):
    """ModelConfig of an experiment config (model section; input size from data.input_size)."""
    from stdpose.model.config import ModelConfig

    return ModelConfig.from_dict({**cfg["model"], "input_size": list(cfg["data"]["input_size"])})


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on weight matrices and convolution kernels, none on biases, norm scales and
    position / frame embeddings (1-d tensors or names containing 'pos_embed' / 'embed_frame') - the usual ViT choice;
    the paper does not say."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or "pos_embed" in name or "frame_embed" in name:
            no_decay.append(param)
        else:
            decay.append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def mi_gradient_ratios(model: nn.Module, losses: dict[str, torch.Tensor]) -> dict[str, float]:
    """||grad L_MI|| / ||grad L_H|| on the single-frame part ("backbone": ViT + head) and on the temporal modules
    ("temporal": TFF, TKS, DAM, STDA, fusion head, MI projection); the graph is kept for the real backward."""
    from stdpose.model.losses import gradient_norm_ratio

    single = [p for name, p in model.named_parameters() if name.startswith(("backbone.", "head."))]
    temporal = [p for name, p in model.named_parameters() if not name.startswith(("backbone.", "head."))]
    return {"backbone": gradient_norm_ratio(losses["mi"], losses["heatmap"], single),
            "temporal": gradient_norm_ratio(losses["mi"], losses["heatmap"], temporal)}


class StdposeModule(pl.LightningModule):
    """STDPose training/validation for an experiment config (the dict from `engine.config.load_config`)."""

    def __init__(self, config: dict, architecture: dict | None = None):
        """`architecture`: resolved sizes stored by an earlier run (`load_from_checkpoint` passes them back)."""
        super().__init__()
        from stdpose.engine.checkpoints import with_architecture
        from stdpose.model import StdposeLoss, build_model

        config = with_architecture(config, architecture)
        mcfg = model_config(config)
        # the resolved sizes too, so the checkpoint rebuilds this network even if a size default changes later
        self.save_hyperparameters({"config": config, "architecture": mcfg.architecture()})
        self.config = config
        self.task = config["data"]["task"]
        self.model = build_model(mcfg)
        self.criterion = StdposeLoss(mcfg)  # holds the MI critics (jsd / infonce), optimised with the model
        self.aux_inputs = config["data"].get("aux_inputs", "labels")
        self.grad_log_every = int(mcfg.mi_grad_log_every) if mcfg.switches.mi else 0
        self._predictions: list[dict[str, Any]] = []
        self.last_map: Any = None  # PoseTrackMapResult of the latest validation

    # ------------------------------------------------------------------ forward / steps
    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        labels_given = self.task == "propagation" and (self.aux_inputs == "labels" or not self.training)
        aux = batch["aux_heatmaps"] if labels_given else None  # (B, 2, J, h, w) labels, or None: own predictions
        return self.model(batch["frames"], aux)

    def _losses(self, batch: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        outputs = self(batch)
        losses = self.criterion(outputs, batch["target"], batch["target_weight"])
        if "loss" not in losses:
            raise RuntimeError("StdposeLoss must return a 'loss' entry")
        return outputs, losses

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        _, losses = self._losses(batch)
        size = batch["frames"].shape[0]
        if self.grad_log_every and self.global_step % self.grad_log_every == 0:
            for part, ratio in mi_gradient_ratios(self.model, losses).items():
                self.log(f"train/grad_ratio_{part}", ratio, on_step=True, on_epoch=False, batch_size=size)
        for name, value in losses.items():
            # per-step values are this rank's; the epoch mean of the total loss is averaged over ranks
            self.log(f"train/{name}", value.detach().float(), on_step=True, on_epoch=(name == "loss"),
                     prog_bar=(name == "loss"), batch_size=size, sync_dist=(name == "loss"))
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], on_step=True, on_epoch=False, batch_size=size)
        return losses["loss"]

    def on_validation_epoch_start(self) -> None:
        self._predictions = []

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        outputs, losses = self._losses(batch)
        size = batch["frames"].shape[0]
        for name, value in losses.items():
            self.log(f"val/{name}", value.detach().float(), on_step=False, on_epoch=True, batch_size=size,
                     sync_dist=True)
        self._predictions.append(validation.decode_batch(outputs["heatmaps"], batch["meta"]))

    def on_validation_epoch_end(self) -> None:
        records = validation.gather(self._predictions, self.trainer.world_size)
        self._predictions = []
        if self.trainer.sanity_checking:
            return
        dataset = validation.val_dataset_of(self.trainer)
        result = validation.evaluate(dataset, records, partial=validation.is_partial(self.trainer))
        self.last_map = result
        # Every rank computed the same table from the gathered predictions; sync_dist averages identical values
        # (it only keeps Lightning's distributed bookkeeping consistent).
        for group in GROUP_NAMES:
            self.log(f"val/{group}", float(result.groups.get(group, float("nan"))), on_epoch=True, sync_dist=True)
        self.log("val/mAP", float(result.groups["Mean"]), on_epoch=True, prog_bar=True, sync_dist=True)
        if self.trainer.is_global_zero:
            validation.report(result, self.current_epoch, self.global_step, self.config["output_dir"])

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> tuple[list[torch.optim.Optimizer], list[dict[str, Any]]]:
        o = self.config["optim"]
        optimizer = torch.optim.AdamW(
            parameter_groups(self, o["weight_decay"]), lr=o["lr"], betas=tuple(o["betas"])  # model + MI critics
        )
        # Paper: lr 2e-4, x0.1 at epochs 12 and 16 (0-based epoch index: epoch 12 is the 13th epoch, as in mmpose).
        schedulers: list[dict[str, Any]] = []
        if o["warmup_steps"] > 0:
            # Linear warmup over optimizer steps; multiplicative, so it composes with the epoch steps below.
            warmup = torch.optim.lr_scheduler.LinearLR(
                optimizer, start_factor=o["warmup_factor"], end_factor=1.0, total_iters=o["warmup_steps"]
            )
            schedulers.append({"scheduler": warmup, "interval": "step", "name": "lr-warmup"})
        steps = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=o["milestones"], gamma=o["gamma"])
        schedulers.append({"scheduler": steps, "interval": "epoch", "name": "lr"})
        return [optimizer], schedulers
