"""The process group's end (run_state.close_distributed) and torchrun's environment."""

import torch
import torch.distributed as dist

from macos_lite.run_state import close_distributed, distributed_env


def test_distributed_env_reads_torchrun_variables(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed_env() == (0, 1, 0)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed_env() == (3, 4, 1)


def test_close_distributed_ends_an_open_group_and_is_a_no_op_without_one(tmp_path):
    close_distributed()  # no group: nothing to do, nothing raised
    assert not dist.is_initialized()
    for wait in (True, False):
        store = dist.FileStore(str(tmp_path / f"store{wait}"), 1)
        dist.init_process_group("gloo", store=store, rank=0, world_size=1)
        t = torch.ones(2)
        dist.all_reduce(t)  # the group works
        assert t.tolist() == [1.0, 1.0]
        close_distributed(wait=wait)
        assert not dist.is_initialized()
