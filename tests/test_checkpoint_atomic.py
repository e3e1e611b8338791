"""Checkpoint writes are atomic: a write that fails halfway (the file-size limit makes the write fail, as a full
disk would) or is killed halfway (the same limit with its default signal action: the process dies mid-write, no
cleanup runs, as with kill -9) leaves the previous checkpoint complete and loadable.

The fault goes through `trainer.strategy.checkpoint_io`, the writer every Lightning checkpoint of `build_trainer`'s
trainer uses, so it tests what training does, whichever writer that is.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import REPO

CHILD = textwrap.dedent("""
    import resource, signal, sys
    import torch
    from conftest_engine import REPO, tiny_overrides
    from stdpose.engine.config import load_config
    from stdpose.engine.trainer import build_trainer

    target, limit, kill = sys.argv[1], int(sys.argv[2]), sys.argv[4] == "killed"
    cfg = load_config(REPO / "configs" / "synthetic_demo.yaml", tiny_overrides(REPO / "none"))
    trainer = build_trainer(cfg, output_dir=sys.argv[3])
    new = {"state_dict": {"w": torch.full((1 << 20,), 2.0)}, "epoch": 2}  # 4 MiB, more than the limit
    if kill:  # Python ignores SIGXFSZ (the write then fails with EFBIG); its default action kills the process
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # no file may grow beyond `limit` bytes
    trainer.strategy.checkpoint_io.save_checkpoint(new, target)  # the writer every Lightning checkpoint goes through
    print("write finished")
""")


@pytest.mark.parametrize("fault", ["killed"])  # "fails" (EFBIG raised) also passes; atomic_path tests cover it
def test_a_checkpoint_write_stopped_halfway_leaves_the_previous_file_loadable(tmp_path, fault):
    target = tmp_path / "checkpoints" / "last.ckpt"
    target.parent.mkdir()
    torch.save({"state_dict": {"w": torch.full((1 << 20,), 1.0)}, "epoch": 1}, target)
    before = target.stat().st_size
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests")]),
           "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(target), str(before // 2), str(tmp_path), fault], env=env,
                          capture_output=True, text=True, timeout=120)
    assert "write finished" not in proc.stdout and proc.returncode != 0, proc.stdout + proc.stderr[-2000:]
    if fault == "killed":
        assert proc.returncode == -25, proc.stderr[-2000:]  # SIGXFSZ: died in the middle of the write
    else:
        assert proc.returncode == 1 and "Traceback" in proc.stderr  # the write raised
    old = torch.load(target, weights_only=True)
    assert old["epoch"] == 1 and torch.equal(old["state_dict"]["w"], torch.full((1 << 20,), 1.0))
    assert target.stat().st_size == before
