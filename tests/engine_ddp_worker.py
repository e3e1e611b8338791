"""Helper script for test_engine_ddp.py (not a test module): train a few steps with 2-process DDP on CPU (gloo).

Lightning's DDP launcher starts rank 1 by running this same script again with LOCAL_RANK=1. Each rank writes its
final weights and the samples it trained on to OUT/rank<r>.pt.
usage: python engine_ddp_worker.py DATA_DIR OUT_DIR
       python engine_ddp_worker.py DATA_DIR OUT_DIR validate DEVICES   (`validate_tables`: no training, each rank
       writes OUT/val_rank<r>.json with the validation table of the seeded initial model)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytorch_lightning as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest_engine import REPO, tiny_overrides  # noqa: E402

from stdpose.engine.config import load_config  # noqa: E402
from stdpose.engine.trainer import train  # noqa: E402

VAL_VIDEO = "100001_synth_val.json"  # of the tiny preset, seed 0


class _Record(pl.Callback):
    """Keep the (video, frame, person) of every training sample and the initial weights of this rank."""

    def __init__(self) -> None:
        self.samples: list[tuple[int, int, int]] = []
        self.initial: dict[str, torch.Tensor] = {}

    def on_train_start(self, trainer, module) -> None:
        self.initial = {k: v.detach().clone() for k, v in module.state_dict().items()}

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        meta = batch["meta"]
        self.samples += list(zip(meta["video_index"].tolist(), meta["frame_index"].tolist(),
                                 meta["person_index"].tolist()))

    def on_fit_end(self, trainer, module) -> None:
        out = Path(trainer.default_root_dir)
        state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        torch.save({"state": state, "initial": self.initial, "samples": self.samples,
                    "global_step": trainer.global_step, "world_size": trainer.world_size},
                   out / f"rank{trainer.global_rank}.pt")


def main(data_dir: str, out_dir: str) -> None:
    overrides = tiny_overrides(Path(data_dir), {
        "trainer.devices": 2,
        "trainer.strategy": "ddp",
        "trainer.max_epochs": 1,
        "trainer.limit_train_batches": 3,
        "trainer.limit_val_batches": 2,
    })
    cfg = load_config(REPO / "configs" / "synthetic_demo.yaml", overrides)
    result = train(cfg, output_dir=out_dir, extra_callbacks=[_Record()])
    print(f"rank finished: global_step={result.global_step} interrupted={result.interrupted}", flush=True)


def validate_tables(data_dir: str, out_dir: str, devices: int) -> dict:
    """Validate the seeded, untrained model on the whole val split with `devices` CPU processes; returns (and on
    every rank writes) the PoseTrack table as a dict. The same seed gives the same weights on every rank."""
    import json

    from stdpose.engine.lit import StdposeModule
    from stdpose.engine.trainer import build_datamodule, build_trainer, quiet_lightning

    overrides = tiny_overrides(Path(data_dir), {
        "trainer.devices": devices,
        "trainer.strategy": "ddp" if devices > 1 else "auto",
        "data.batch_size": 3,
    })
    # one val video of 35 samples: an odd count, so the distributed sampler pads one rank with a duplicate
    overrides.append(f"data.val={{annotations: {data_dir}/annotations/val/{VAL_VIDEO}, image_root: {data_dir}}}")
    cfg = load_config(REPO / "configs" / "synthetic_demo.yaml", overrides)
    cfg = {**cfg, "output_dir": out_dir}
    quiet_lightning()
    pl.seed_everything(0, verbose=False)
    module = StdposeModule(cfg)
    trainer = build_trainer(cfg, out_dir)
    datamodule = build_datamodule(cfg)
    trainer.validate(module, datamodule=datamodule, verbose=False)
    table = {**module.last_map.to_dict(), "val_samples": len(datamodule.val_dataset)}
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / f"val_rank{trainer.global_rank}.json").write_text(json.dumps(table))
    return table


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[3] == "validate":
        validate_tables(sys.argv[1], sys.argv[2], int(sys.argv[4]))
    else:
        main(sys.argv[1], sys.argv[2])
