"""The node's torch_threads parameter: applied once when the pipeline starts; 0 keeps torch's."""

from __future__ import annotations

import pytest
import torch

from sphmask_core.sensor.node_params import NodeParams, validate
from sphmask_ros.pipeline import Pipeline


@pytest.fixture
def _restore_threads():
    n = torch.get_num_threads()
    yield n
    torch.set_num_threads(n)


def test_torch_threads_set_at_start(_restore_threads):
    torch.set_num_threads(1)
    Pipeline.from_params(NodeParams(device="cpu", torch_threads=2), warmup=False)
    assert torch.get_num_threads() == 2
    Pipeline.from_params(NodeParams(device="cpu", torch_threads=0), warmup=False)
    assert torch.get_num_threads() == 2  # 0 leaves the current setting alone
    assert NodeParams().torch_threads == 1


def test_torch_threads_validated():
    assert validate("torch_threads", 4)[0]
    assert not validate("torch_threads", -1)[0]
