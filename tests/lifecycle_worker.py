"""Helper script for test_checkpoint_lifecycle.py (not a test module): train the tiny demo run and stop at
optimizer step AT, so the parent process can send a real signal (SIGKILL, SIGTERM) at a known point mid-epoch.

At the start of the batch after step AT it writes OUT/held and waits (up to 60 s) until OUT/release exists.
usage: python lifecycle_worker.py DATA_DIR OUT_DIR AT
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytorch_lightning as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest_engine import REPO  # noqa: E402
from lifecycle_common import lifecycle_config  # noqa: E402

from stdpose.engine.trainer import train  # noqa: E402


class _Hold(pl.Callback):
    def __init__(self, out: Path, at: int):
        self.out, self.at = out, at

    def on_train_batch_start(self, trainer, *args) -> None:
        if trainer.global_step == self.at and not (self.out / "held").exists():
            (self.out / "held").write_text(str(trainer.global_step))
            deadline = time.monotonic() + 60
            while not (self.out / "release").exists() and time.monotonic() < deadline:
                time.sleep(0.02)


def main() -> int:
    data, out, at = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    result = train(lifecycle_config(REPO, data), output_dir=out / "run", extra_callbacks=[_Hold(out, at)])
    return 130 if result.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
