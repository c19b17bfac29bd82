"""A tiny 2-process DDP fit on CPU (gloo): both ranks end with identical weights that moved from the start."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_toy import toy_module


@pytest.mark.slow
def test_ddp_two_processes_cpu_identical_weights(tmp_path):
    script = Path(__file__).with_name("ddp_fit_script.py")
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1", PL_DISABLE_FORK="1")
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    start = toy_module(seed=0).model.state_dict()
    assert w0.keys() == w1.keys() == start.keys()
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    assert any((w0[k] - start[k]).abs().max() > 1e-3 for k in w0)
    assert (tmp_path / "run" / "model.safetensors").is_file()
    assert (tmp_path / "run" / "last.ckpt").is_file()
