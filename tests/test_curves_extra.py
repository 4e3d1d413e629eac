"""EXTRA's objectives and two-stage training (seed 000 §5, METHODS §1.4–1.7)."""
import math

import pytest
import torch

import mtl.curves as C
from mtl import weighting as W
from mtl.models import create_model
from mtl.train import TrainConfig, fit

CFG = TrainConfig(epochs=1, batch_size=16, lr=1e-2, device="cpu", max_steps_per_epoch=2)


def test_order_aware_loss_rewards_the_stated_order():
    t = torch.tensor([0.2, 0.8])
    good = C.order_aware_loss(torch.tensor([0.5, 1.0]), torch.tensor([1.0, 0.5]), t)   # L1 rises, L2 falls
    bad = C.order_aware_loss(torch.tensor([1.0, 0.5]), torch.tensor([0.5, 1.0]), t)
    assert good < 1 < bad
    assert math.isclose(float(good), math.exp(-0.5 * 0.6), rel_tol=1e-6)
    swapped = C.order_aware_loss(torch.tensor([1.0, 0.5]), torch.tensor([0.5, 1.0]), t.flip(0))
    assert torch.isclose(swapped, good)                               # symmetric in (t1, t2) order


def test_alignment_loss_weighs_the_midpoint_most():
    lr = torch.tensor([1.0, 3.0])
    val = C.alignment_loss(lr, torch.tensor([0.5, 0.1]))
    assert math.isclose(float(val), (1 + math.exp(-0.4)) * 2.0, rel_tol=1e-6)
    assert C.alignment_loss(lr, torch.tensor([0.5, 0.5])) > C.alignment_loss(lr, torch.tensor([0.0, 1.0]))


def test_objective_parts_and_code_options():
    L = torch.tensor([[1.0, 2.0, 3.0], [2.0, 1.0, 5.0]])             # [2 samples, 3 tasks]
    t = torch.tensor([0.1, 0.7])
    tasks = ["seg", "depth", "normal"]
    parts = C.ExtraStep().objective(L, t, tasks)                      # E1=seg, E2=normal, E3=depth
    assert math.isclose(float(parts["base"]), 0.5 * ((1 + 3) + (2 + 5)) / 2, rel_tol=1e-6)
    r_o = C.order_aware_loss(L[:, 0], L[:, 2], t)
    r_al = C.alignment_loss(L[:, 1], t)
    assert torch.isclose(parts["total"], parts["base"] + r_al + 0.5 * r_o)
    code = C.ExtraStep(reduce="sum", task_weights=[1, 1, 10], ro_weight="t").objective(L, t, tasks)
    assert math.isclose(float(code["base"]), ((1 + 30) + (2 + 50)) / 2, rel_tol=1e-6)
    a_t = 0.5 * (math.exp(-0.4) + math.exp(-0.2))
    assert math.isclose(float(code["total"]), float(code["base"] + r_al + a_t * r_o), rel_tol=1e-6)
    two = C.ExtraStep(groups=[["depth", "seg"], ["normal"]]).objective(L, t, tasks)
    assert float(two["r_align"]) == 0.0


def test_groups_and_protocol_counts_are_checked():
    assert C.default_groups(["a", "b"]) == [["a"], ["b"]]
    assert C.default_groups(["seg", "depth", "normal"]) == [["seg"], ["normal"], ["depth"]]
    assert [C.default_control_points(d, k) for d, k in (("cityscapes", 2), ("nyuv2", 3), ("multimnist", 2),
                                                         ("attributes", 40))] == [4, 5, 3, 3]
    L, t = torch.ones(2, 4), torch.tensor([0.1, 0.2])
    with pytest.raises(ValueError, match="explicit groups"):
        C.ExtraStep().objective(L, t, list("abcd"))
    with pytest.raises(ValueError, match="partition"):
        C.ExtraStep(groups=[["a"], ["b"], ["c"]]).objective(L, t, list("abcd"))
    with pytest.raises(ValueError, match="lacks"):
        C.ExtraStep(groups=[["a"], ["z"]]).objective(L, t, list("ab"))
    with pytest.raises(ValueError, match="ro_weight"):
        C.ExtraStep(ro_weight="beta")


def test_stage_two_moves_only_interior_points_and_rational_weights(tiny_mnist):
    torch.manual_seed(0)
    ends = [create_model("hps", "lenet", tiny_mnist.tasks) for _ in range(2)]
    curve = C.curve_model(ends, "nurbs", 4)
    before = {k: v.clone() for k, v in curve.state_dict().items()}
    raw = curve.family.raw_weights.detach().clone()
    hist = fit(curve, tiny_mnist, W.create("ls"), CFG, step_rule=C.ExtraStep())
    after = curve.state_dict()
    for k, v in after.items():
        if k.startswith(("points.0.", "points.3.")):
            assert torch.equal(v, before[k]), k                        # end points bit-identical
        elif k.startswith(("points.1.", "points.2.")):
            assert not torch.equal(v, before[k]), k                    # every interior tensor moved
    assert not torch.equal(curve.family.raw_weights.detach(), raw)
    assert set(hist.epochs[0]["train_loss"]) == {"left", "right"} and curve.t == 0.5


def test_skip_above_skips_the_update(tiny_mnist):
    torch.manual_seed(0)
    curve = C.curve_model([create_model("hps", "lenet", tiny_mnist.tasks) for _ in range(2)], "nurbs", 3)
    before = {k: v.clone() for k, v in curve.state_dict().items() if "points.1." in k}
    fit(curve, tiny_mnist, W.create("ls"), CFG, step_rule=C.ExtraStep(skip_above=0.0))
    assert all(torch.equal(curve.state_dict()[k], v) for k, v in before.items())


@pytest.mark.parametrize("base", ["ls", "cagrad", "fairgrad"])
def test_two_stage_extra_with_each_base_weighting(tiny_mnist, base):
    if base not in W.names():
        pytest.skip(f"weighting {base!r} is not registered yet")
    res = C.train_extra(lambda: create_model("hps", "lenet", tiny_mnist.tasks), tiny_mnist, CFG, base=base)
    assert len(res.curve.points) == 3 and res.curve.trainable_points() == [1]
    for end, k in ((res.endpoints[0], 0), (res.endpoints[1], 2)):
        for (n, p), q in zip(end.named_parameters(), res.curve.points[k].parameters()):
            assert torch.equal(p, q), n
    assert not torch.equal(next(res.endpoints[0].parameters()), next(res.endpoints[1].parameters()))
    assert len(res.stage1) == 2 and res.stage2.epochs
