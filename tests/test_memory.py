"""The peak-memory meter (CPU live-storage tracking, CUDA allocator counters) and the step cost."""
import pytest
import torch

from mtl import weighting as W
from mtl.memory import PeakMemory, StepCost, step_cost
from mtl.models import create_model


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py




def test_exact_bytes_of_live_tensors():
    with PeakMemory("cpu") as m:
        a = torch.ones(1000)                      # 4000 B
        b = torch.ones(2000, dtype=torch.float64) # 16000 B -> 20000 live
        del a
        c = torch.ones(500)                       # 18000 live
    assert m.peak_bytes == 20000 and b.numel() + c.numel() == 2500


def test_views_inplace_and_preexisting_tensors_are_free():
    a = torch.ones(1000)
    with PeakMemory("cpu") as m:
        v = a.view(10, 100).t()
        a.add_(1)
        a.mul_(v.reshape(-1))                     # reshape of the transposed view copies: 4000 B
    assert m.peak_bytes == 4000


def test_rebinding_in_a_loop_keeps_two_alive_at_most():
    with PeakMemory("cpu") as m:
        x = torch.zeros(256)
        for _ in range(50):
            x = torch.zeros(256) + x              # zeros + result alive together with the old x
    assert m.peak_bytes == 3 * 1024


def test_bigger_batch_needs_more_memory(scenes):
    costs = {bs: step_cost(lambda: create_model("mtan", "segnet", scenes.tasks, backbone_kw=dict(width=4, stages=2)),
                           scenes, W.create("ew"), batch_size=bs, device="cpu", steps=1) for bs in (1, 4)}
    small, big = costs[1], costs[4]
    assert isinstance(small, StepCost) and not small.oom and small.params == big.params > 0
    params_bytes = 4 * small.params
    assert small.peak_bytes > 3 * params_bytes    # weights + gradients + Adam's two moments, at least
    assert big.peak_bytes > small.peak_bytes + params_bytes
    assert small.step_time_s > 0


def test_memory_budget_reports_oom(scenes):
    cost = step_cost(lambda: create_model("hps", "segnet", scenes.tasks, backbone_kw=dict(width=4, stages=2)), scenes,
                     W.create("ew"), batch_size=2, device="cpu", memory_limit_bytes=1024)
    assert cost.oom and cost.peak_bytes > 1024 and cost.step_time_s is None


def test_unsupported_device():
    with pytest.raises(ValueError, match="cpu' or 'cuda"):
        PeakMemory("meta")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_peak_counts_allocations():
    with PeakMemory("cuda") as m:
        a = torch.ones(1 << 20, device="cuda")    # 4 MiB
        b = torch.ones(1 << 20, device="cuda")
        del a, b
    assert m.peak_bytes >= 8 << 20
