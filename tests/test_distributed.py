"""Exact data parallelism: 2 ranks × batch B take the steps of 1 process × batch 2B, for every method.

Real processes: one gloo process group of 2 ranks on CPU, spawned once for all the cases (every
registered method in every mode it declares). Each rank trains with ``fit(..., distributed=True)``
on its shard; the test process trains the same model on the whole batch with ``fit`` and compares
the parameters after 4 steps (2 epochs × 2, so end-of-epoch state — DWA, GradNorm's reference
losses — is covered, and the three-batch methods draw extra batches). Float64 throughout; the two
runs differ only by reduction order (the global losses are a mean of two batch means, the global J
a mean of two ranks' rows), so the tolerance is rtol 1e-9 / atol 1e-11 — a missing cross-rank term
or an unsynchronised random draw changes the parameters at the first step by orders of magnitude more.
Methods that declare ``ddp_exact=False`` are refused (tested here) and run only with ``allow_inexact``.
"""
import inspect
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import mtl.weighting as W
from mtl.data import DataBundle
from mtl.models import MultiTaskModel
from mtl.train import TrainConfig, fit

from _toy import regression_bundle

T, WORLD, B = 3, 2, 4              # tasks, ranks, samples per rank
CONFIG = dict(epochs=2, steps_per_epoch=2, batch_size=B, lr=1e-2, weight_decay=1e-3, device="cpu")
SKIPPED = {"url": "needs trained teacher models; it declares ddp_exact=False, its refusal is tested below"}


def cases() -> list[tuple[str, str | None]]:
    """(name, mode) for every registered method, in every mode it declares (None: it takes no mode)."""
    out = []
    for name in W.names():
        if name in SKIPPED:
            continue
        takes_mode = "mode" in inspect.signature(W.WEIGHTINGS.get(name)).parameters
        out += [(name, m) for m in W.info(name).modes] if takes_mode else [(name, None)]
    return out


EXACT = [c for c in cases() if W.info(c[0]).ddp_exact]
INEXACT = [n for n in W.names() if not W.info(n).ddp_exact]


def bundle(n: int = 32) -> DataBundle:
    """T regression tasks on [2, 4, 4] inputs, float64; 16 train samples (two global batches of 2B)."""
    return regression_bundle("ddp", n, T, dtype=torch.float64)


class _Encoder(nn.Module):
    """A conv layer (dense per-task rows) and a linear layer (factored rows)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 4 * 4, 6)

    def forward(self, x):                                       # [B, 2, 4, 4] -> [B, 6]
        return torch.tanh(self.fc(torch.relu(self.conv(x)).flatten(1)))


def model() -> MultiTaskModel:
    torch.manual_seed(0)
    return MultiTaskModel(_Encoder(), {f"t{i}": nn.Linear(6, 1) for i in range(T)}).double()


def make(name: str, mode: str | None):
    return W.create(name) if mode is None else W.create(name, mode=mode)


def train(name: str, mode: str | None, distributed: bool, batch_size: int, amp: str | None = None, **kw):
    """(final parameters, run info) of one short run."""
    m = model()
    hist = fit(m, bundle(), make(name, mode), TrainConfig(**{**CONFIG, "batch_size": batch_size, "amp": amp}),
               distributed=distributed, **kw)
    return {k: v.detach().clone() for k, v in m.state_dict().items()}, hist.info


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        results = {}
        for name, mode in EXACT:
            results[(name, mode)] = train(name, mode, True, B)
        for name in INEXACT[:1]:                                   # allowed explicitly, it runs
            results[(name, None)] = train(name, None, True, B, allow_inexact=True)
        results[("mgda", "param", "bf16")] = train("mgda", "param", True, B, amp="bf16")
        torch.save(results, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Every case trained once by a 2-rank gloo group: rank 0's results, and rank 1's under "rank1"."""
    out = str(tmp_path_factory.mktemp("ddp") / "ranks.pt")
    env = {k: os.environ.pop(k) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK") if k in os.environ}
    try:
        mp.spawn(_worker, args=(_free_port(), out), nprocs=WORLD, join=True)
    finally:
        os.environ.update(env)
    results = torch.load(f"{out}.0", weights_only=False)
    return {**results, "rank1": torch.load(f"{out}.1", weights_only=False)}


@pytest.mark.parametrize("name,mode", EXACT, ids=[f"{n}-{m}" for n, m in EXACT])
def test_two_ranks_take_the_steps_of_one_process_on_the_whole_batch(two_ranks, name, mode):
    torch.set_num_threads(1)
    want, _ = train(name, mode, False, WORLD * B)
    got, info = two_ranks[(name, mode)]
    assert info["distributed"]["world_size"] == WORLD and info["distributed"]["steps"] == 4
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-9, atol=1e-11, msg=lambda m: f"{name}/{mode} {k}: {m}")
    start = model().state_dict()
    assert any(not torch.equal(start[k], want[k]) for k in want)          # the runs moved


def test_every_registered_method_is_exact_or_declares_why_not():
    covered = {n for n, _ in EXACT} | set(INEXACT)
    assert covered == set(W.names()), sorted(set(W.names()) - covered)
    assert all(W.info(n).ddp_note for n in INEXACT)
    assert set(SKIPPED) <= set(INEXACT)


@pytest.mark.parametrize("name", INEXACT)
def test_an_inexact_method_is_refused_unless_allowed(name):
    with pytest.raises(ValueError, match=rf"{name!r} is not exact under data parallelism .*allow_inexact=True"):
        fit(model(), bundle(), W.WEIGHTINGS.get(name).__new__(W.WEIGHTINGS.get(name)), TrainConfig(**CONFIG),
            distributed=True)


def test_an_allowed_inexact_method_runs(two_ranks):
    params, info = two_ranks[(INEXACT[0], None)]
    assert info["distributed"]["world_size"] == WORLD and all(torch.isfinite(v).all() for v in params.values())


def test_communication_is_what_each_family_needs(two_ranks):
    """Bytes per step by kind: a loss weighting sends the losses and the averaged gradients (as DDP);
    a param-mode Gramian method the per-task rows of the shared parameters instead of their gradient
    (a linear layer's factors instead of its rows when they are smaller);
    a rep-mode Gramian method only the T×T Gramian besides the gradients; GradDrop the rows at the representation."""
    m = model()
    d = sum(p.numel() for p in m.shared_parameters())
    n_all = sum(p.numel() for p in m.parameters())
    ring = 2 * (WORLD - 1) / WORLD
    per = {c: two_ranks[c][1]["distributed"]["bytes_per_step"] for c in [("ew", None), ("mgda", "param"),
                                                                         ("mgda", "rep"), ("graddrop", "rep")]}
    assert per[("ew", None)] == {"grads": ring * 8 * n_all, "losses": ring * 8 * T}
    conv = sum(p.numel() for p in m.encoder.conv.parameters())           # dense rows: averaged
    fc_in, fc_out = m.encoder.fc.in_features, m.encoder.fc.out_features   # factors D, X: gathered (smaller)
    assert (WORLD - 1) * B * (T * fc_out + fc_in) < ring * T * fc_out * (fc_in + 1)
    assert per[("mgda", "param")] == {"grads": ring * 8 * (n_all - d), "losses": ring * 8 * T,
                                      "param_rows": ring * 8 * T * conv,
                                      "factors": (WORLD - 1) * 8 * B * (T * fc_out + fc_in)}
    assert per[("mgda", "rep")] == {"grads": ring * 8 * n_all, "losses": ring * 8 * T, "rep_gram": ring * 8 * T * T}
    assert per[("graddrop", "rep")]["rep_rows"] == (WORLD - 1) * 8 * T * B * 6


def test_a_global_batch_that_does_not_split_evenly_is_an_error():
    from mtl.distributed import DataParallel

    sync = DataParallel.__new__(DataParallel)
    sync.world, sync.rank = 2, 1
    x = torch.arange(6.0)
    assert torch.equal(sync.shard({"x": (x, x)})["x"][1], torch.tensor([3.0, 4.0, 5.0]))
    with pytest.raises(ValueError, match="does not split into 2 equal shards"):
        sync.shard(torch.arange(5.0))


def test_the_readme_table_is_the_one_the_registry_renders():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start, end = "<!-- parallel-table -->\n", "\n<!-- /parallel-table -->"
    assert start in text and end in text, "README lacks the generated table's markers"
    table = text.split(start, 1)[1].split(end, 1)[0]
    assert table == W.parallel_table(), "README table is stale: paste mtl.weighting.parallel_table()"
    assert table.count("\n") == len(W.names()) + 1                       # a row per registered method


def test_sync_batchnorm_needs_distributed_training():
    with pytest.raises(ValueError, match="sync_batchnorm=True needs distributed=True"):
        fit(model(), bundle(), W.create("ew"), TrainConfig(**CONFIG), sync_batchnorm=True)


def test_every_rank_holds_the_same_model(two_ranks):
    """Identical parameters on both ranks, bit for bit, for every case: the state of stateful methods, the
    random draws and the global update are the same everywhere. (The amp="bf16" case runs the autocast
    path under data parallelism; autocast leaves this float64 model's ops in float64.)"""
    other = two_ranks["rank1"]
    assert set(other) == set(two_ranks) - {"rank1"}
    for case, (params, _) in other.items():
        for k, v in params.items():
            assert torch.equal(v, two_ranks[case][0][k]), f"{case} {k} differs between the ranks"
    params, info = two_ranks[("mgda", "param", "bf16")]
    assert info["config"]["amp"] == "bf16" and all(torch.isfinite(v).all() for v in params.values())
