"""The per-task gradient engine: the T×d Jacobian of the task losses in one batched backward.

``jacobian(losses, inputs)`` differentiates the T losses with respect to ``inputs`` (the shared
parameters in "param" mode, the shared representation in "rep" mode, MGDA-UB style) with
``torch.autograd.grad(..., is_grads_batched=True)``: one vmapped backward whose batch is the
rows of the identity, instead of LibMTL's Python loop of T backward passes (``loop=True`` makes
that loop instead: on CPU a vmapped convolution backward runs its rows one by one anyway, so the
loop is faster there; the engine measures which, see :class:`mtl.weighting.gradient.RowPath`).
``chunk_size`` bounds memory by differentiating ``chunk_size`` tasks per backward (the graph is
retained for every chunk but the last unless ``retain_graph``). ``write_grads`` accumulates a
flat vector or per-parameter tensors into ``.grad`` of a parameter list (taking owned tensors
without a copy). Separate task heads are crossed by one backward (:func:`head_split`), which
also gives the heads' own gradients.

``FactoredJacobian`` keeps J without forming it: for ``nn.Linear`` layers the per-task gradients
w.r.t. each layer's *output* D [T, n, out] (one batched backward that computes no weight
gradients) and its input X. From them ``gramian`` / ``block_gramian`` give G = JJᵀ (or
cross-Gramians between batches) as ⟨D_s, (XXᵀ + 1) D_t⟩; methods whose weights depend on G only
then get Σ_t w_t g_t from the same factors and rows (``combined_grads``, parameter by parameter,
each row released once used — no second backward); methods that keep per-task gradient state
(DB-MTL, MoCo, ExcessMTL) update it in place layer by layer (``accumulate_into``, ``blocks``).
``DenseJacobian`` wraps a formed J behind the same interface.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import torch

from .checks import check_count

HALF = (torch.float16, torch.bfloat16)       # autocast's dtypes: rows in them are taken to float64 before a Gramian


def _check_chunk(chunk_size: int | None, n: int) -> int:
    if chunk_size is None:
        return max(n, 1)
    return check_count("chunk_size", chunk_size)


def flatten(tensors: Sequence[torch.Tensor], batch: int | None = None) -> torch.Tensor:
    """Concatenate tensors into one vector ([d]) or, with ``batch``, rows ([batch, d])."""
    if batch is None:
        return torch.cat([t.reshape(-1) for t in tensors])
    return torch.cat([t.reshape(batch, -1) for t in tensors], dim=1)


def jacobian(losses: torch.Tensor, inputs: Sequence[torch.Tensor], *, chunk_size: int | None = None,
             retain_graph: bool = False, rep: torch.Tensor | None = None, loop: bool = False,
             rep_rows: torch.Tensor | None = None) -> torch.Tensor:
    """J [T, d]: row t is the gradient of ``losses[t]`` w.r.t. ``inputs`` (flattened, concatenated).

    Inputs that a loss does not reach give zeros. With ``chunk_size=c`` the rows are computed
    ``c`` at a time (ceil(T/c) batched backward passes of c rows each).
    ``rep`` (the shared representation) lets separate task heads be crossed by one ordinary
    backward instead of T batched rows each (see :func:`head_gradients`). ``loop`` makes the rows by
    T ordinary backward passes instead of vmapped ones (faster for convolutions on CPU, see
    :func:`_batched_grads`). ``rep_rows``: ∂L_t/∂rep already made by :func:`head_split` (with ``rep``).
    """
    if losses.dim() != 1:
        raise ValueError(f"losses must be a vector [T], got shape {tuple(losses.shape)}")
    inputs = list(inputs)
    if not inputs:
        raise ValueError("jacobian needs at least one input tensor (no shared parameters?)")
    T = losses.numel()
    if rep is not None and len(inputs) == 1 and inputs[0] is rep:             # "rep" mode: J is ∂L/∂rep itself
        Dz = head_gradients(losses, rep, ()) if rep_rows is None else rep_rows
        if Dz is not None:
            return Dz.reshape(T, -1)                                          # [T, numel(rep)]
        rep = None
    grads = _batched_grads(losses, inputs, chunk_size, rep, inputs, retain_graph=retain_graph, materialize=True,
                           loop=loop, rep_rows=rep_rows)
    return flatten(grads, batch=T)                                            # [T, d]


def _batched_grads(losses, targets, chunk_size, rep, params, *, retain_graph=True, materialize=False,
                   loop=False, rep_rows=None) -> list:
    """Per target the stacked per-task gradients [T, *target.shape] (None if unreached, unless
    ``materialize``): batched backward passes of the identity rows from ``losses``, or, when the
    task heads above ``rep`` are separate, from ``rep`` with the heads' gradients as the rows.
    ``loop``: one ordinary backward per row instead (``chunk_size`` is then moot). A vmapped backward
    of a convolution runs its rows one after the other anyway, with the overhead of the batching
    rules on top, so on CPU the loop is faster there; which is faster is measured, not assumed
    (:class:`mtl.weighting.GradientWeighting`'s engine ``"auto"``). ``rep_rows``: the heads' rows at
    ``rep`` when already made (:func:`head_split`)."""
    T = losses.numel()
    c = _check_chunk(chunk_size, T)
    Dz = rep_rows if rep_rows is not None or rep is None else head_gradients(losses, rep, params)
    if Dz is None:
        outputs, rows = losses, torch.eye(T, dtype=losses.dtype, device=losses.device)   # [T, T]
    else:
        outputs, rows = rep, Dz                                                          # [T, *rep.shape]
    if loop:
        return _looped_grads(outputs, targets, rows, retain_graph, materialize)
    chunks = []
    for start in range(0, T, c):
        last = start + c >= T
        got = torch.autograd.grad(outputs, targets, grad_outputs=rows[start:start + c],
                                  retain_graph=retain_graph or not last, is_grads_batched=True,
                                  allow_unused=True, materialize_grads=materialize)
        n = min(c, T - start)   # a materialised unused input comes back as zeros_like(x), without the batch dim
        chunks.append([torch.zeros((n, *x.shape), dtype=x.dtype, device=x.device)
                       if g is not None and isinstance(x, torch.Tensor) and g.dim() == x.dim() else g
                       for g, x in zip(got, targets)])
    if len(chunks) == 1:
        return list(chunks[0])
    return [None if chunks[0][i] is None else torch.cat([ch[i] for ch in chunks]) for i in range(len(targets))]


def _looped_grads(outputs, targets, rows, retain_graph: bool, materialize: bool) -> list:
    """:func:`_batched_grads` by one ordinary backward per row of ``rows`` [T, *outputs.shape]; a target
    some row reaches gets zeros for the others (as the batched backward gives), None if none does."""
    T = rows.shape[0]
    per = [torch.autograd.grad(outputs, targets, grad_outputs=rows[t], retain_graph=retain_graph or t < T - 1,
                               allow_unused=True, materialize_grads=materialize) for t in range(T)]
    out = []
    for i, x in enumerate(targets):
        got = [r[i] for r in per]
        if all(g is None for g in got):
            out.append(None)
            continue
        ref = next(g for g in got if g is not None)
        out.append(torch.stack([torch.zeros_like(ref) if g is None else g for g in got]))   # [T, *x.shape]
    return out


def _task_roots(losses: torch.Tensor, limit: int = 64):
    """(stack, transform): the stack node that assembles the T per-task losses (its T input edges are
    the tasks' subgraphs) below a transform of the loss vector (log L; IMTL's e^s L − s, whose extra
    leaf s joins outside the stack), and the transform's nodes walked to find it (at most ``limit``);
    None when the graph has another shape."""
    T, first = losses.numel(), losses.grad_fn
    seen, todo, stack = set(), [first], None
    while todo:
        node = todo.pop()
        if node in seen:
            continue
        if type(node).__name__ == "StackBackward0" and len(node.next_functions) == T:
            if stack is not None and stack is not node:
                return None                                                   # two loss vectors: no single root
            stack = node
            continue
        seen.add(node)
        if len(seen) > limit:
            return None                                                       # not a small transform
        todo += [f for f, _ in node.next_functions if f is not None]
    return None if stack is None else (stack, seen)


def head_gradients(losses: torch.Tensor, rep: torch.Tensor, params: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """∂L_t/∂rep [T, *rep.shape] for every task from ONE ordinary backward, when the task heads are
    separate (see :func:`head_split`); None when the graph does not have this shape."""
    return head_split(losses, rep, params)[0]


def head_split(losses: torch.Tensor, rep: torch.Tensor, params: Sequence[torch.Tensor],
               others: Sequence[torch.Tensor] = ()) -> tuple:
    """(Dz, grads): Dz = ∂L_t/∂rep [T, *rep.shape] for every task from ONE ordinary backward, when the
    task heads are separate: every node that consumes ``rep`` leads to one task's loss only, and no
    parameter in ``params`` (the shared ones) is used above ``rep``. Hooks on the consumers split the
    summed gradient by task. A batched backward of the identity rows would instead push T rows
    through every head (T² head passes, mostly zeros). Transforms of the loss vector (log L,
    e^s L − s) are applied through their T×T Jacobian (diag(e^s) for IMTL), so they keep this path.
    The same backward gives ``grads``, ∇ Σ_t L_t for ``others`` (the heads' parameters: what the
    engine writes into them, so the heads are crossed once per step), when the losses are not
    transformed (else None: the transformed sum's gradient is another one). (None, None) when the
    graph does not have this shape.
    """
    z_node = getattr(rep, "grad_fn", None)
    roots = _task_roots(losses) if z_node is not None else None
    if roots is None:
        return None, None
    (stack, transform), shared = roots, {id(p) for p in params}
    if z_node in transform or any(id(getattr(n, "variable", None)) in shared for n in transform):
        return None, None                                                     # the transform bypasses the stack
    z_key, T = (z_node, rep.output_nr), losses.numel()
    task_of: dict = {}                                                        # consumer node → task
    for t, (root, _) in enumerate(stack.next_functions):
        seen, todo = set(), [root] if root is not None else []
        while todo:
            node = todo.pop()
            if node in seen or node is z_node:
                continue
            seen.add(node)
            var = getattr(node, "variable", None)
            if var is not None and id(var) in shared:
                return None, None                                             # a shared parameter above rep
            for nxt in node.next_functions:
                if nxt == z_key:
                    if task_of.setdefault(node, t) != t:
                        return None, None                                     # a consumer shared by two tasks
                elif nxt[0] is not None:
                    todo.append(nxt[0])
    if not task_of:
        return None, None
    Dz = torch.zeros(T, *rep.shape, dtype=rep.dtype, device=rep.device)       # [T, *rep.shape]

    def capture(node, t):
        slots = [k for k, nxt in enumerate(node.next_functions) if nxt == z_key]

        def hook(grad_inputs, grad_outputs):
            for k in slots:
                if grad_inputs[k] is not None:
                    Dz[t] += grad_inputs[k]
        return node.register_hook(hook)

    handles = [capture(node, t) for node, t in task_of.items()]
    handles.append(stack.register_prehook(lambda grad_outputs: (torch.ones_like(grad_outputs[0]),)))
    plain = losses.grad_fn is stack
    others = list(others) if plain else []
    try:                                                                      # every task's loss with weight 1
        grads = torch.autograd.grad(losses, [rep] + others, grad_outputs=torch.ones_like(losses), retain_graph=True,
                                    allow_unused=True)[1:]
    finally:
        for h in handles:
            h.remove()
    if losses.grad_fn is not stack:                                           # Dz ← A Dz, A = ∂(transformed)/∂L
        A = torch.autograd.grad(losses, [torch.autograd.graph.GradientEdge(stack, 0)],
                                grad_outputs=torch.eye(T, dtype=losses.dtype, device=losses.device),
                                retain_graph=True, is_grads_batched=True)[0]  # [T, T]
        Dz = (A.to(Dz.dtype) @ Dz.reshape(T, -1)).view_as(Dz)
    return Dz, (list(grads) if plain else None)


def write_grads(params: Sequence[torch.Tensor], grads, accumulate: bool = True, *, owned: bool = False,
                keep: Sequence[torch.Tensor] = ()) -> None:
    """Add ``grads`` (a flat vector [d] or a sequence of per-parameter tensors / None) into ``.grad``.

    ``owned``: the per-parameter tensors were made for this call and nothing else uses them (the
    results of ``torch.autograd.grad``, :meth:`FactoredJacobian.combined_grads`), so a parameter
    without a ``.grad`` takes its tensor as it is instead of a copy — unless it is not contiguous or
    shares memory with another gradient written here or with a tensor in ``keep`` (a gradient may be
    the very ``grad_outputs`` tensor an autograd pass was given). A flat vector is always copied.
    """
    params = list(params)
    if isinstance(grads, torch.Tensor):
        sizes = [p.numel() for p in params]
        if grads.numel() != sum(sizes):
            raise ValueError(f"gradient vector has {grads.numel()} entries, parameters have {sum(sizes)}")
        grads, owned = [g.view_as(p) for g, p in zip(grads.split(sizes), params)], False
    taken = {t.untyped_storage().data_ptr() for t in keep}
    for p, g in zip(params, grads):
        if g is None:
            continue
        g = g.to(p.dtype)
        if accumulate and p.grad is not None:
            p.grad.add_(g)
            continue
        ptr = g.untyped_storage().data_ptr()
        if owned and ptr not in taken and g.is_contiguous() and g.shape == p.shape:
            p.grad = g.detach()
        else:
            p.grad = g.detach().clone()
        taken.add(ptr)


def split_parameters(model: torch.nn.Module, shared: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Trainable parameters of ``model`` that are not in ``shared`` (heads and other task-specific ones)."""
    ids = {id(p) for p in shared}
    return [p for p in model.parameters() if p.requires_grad and id(p) not in ids]


# ----------------------------------------------------------------------------- the Gramian without the Jacobian
def _walk(roots) -> tuple[list, dict]:
    """Every autograd node reachable from ``roots`` and the number of edges pointing to each."""
    seen, order, incoming, stack = set(), [], {}, [r for r in roots if r is not None]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        order.append(node)
        for nxt, _ in node.next_functions:
            if nxt is not None:
                incoming[nxt] = incoming.get(nxt, 0) + 1
                stack.append(nxt)
    return order, incoming


def _leaf(fn, ids: dict, incoming: dict, cast: bool = False):
    """The parameter behind an AccumulateGrad node if it is in ``ids`` and used only there; with ``cast``
    (autocast: the layer runs in half precision) also behind autocast's copy of it, used only there."""
    if cast and type(fn).__name__ == "ToCopyBackward0" and incoming.get(fn, 0) == 1:
        fn = fn.next_functions[0][0]
    var = getattr(fn, "variable", None)
    return var if var is not None and id(var) in ids and incoming.get(fn, 0) == 1 else None


def _linear_layers(losses: torch.Tensor, params: Sequence[torch.Tensor]) -> list[tuple]:
    """(node, X [n, in], weight, bias | None) for each ``nn.Linear``-style product y = X Wᵀ (+ b) in the
    graph of ``losses`` whose weight (and bias) is in ``params`` and used exactly once."""
    ids = {id(p): p for p in params}
    order, incoming = _walk([losses.grad_fn])
    found = []
    for node in order:
        kind = type(node).__name__
        if kind not in ("AddmmBackward0", "MmBackward0"):
            continue
        nf = node.next_functions
        t_fn = nf[2][0] if kind == "AddmmBackward0" else nf[1][0]
        if t_fn is None or type(t_fn).__name__ != "TBackward0" or incoming.get(t_fn, 0) != 1:
            continue
        try:
            X = node._saved_mat1 if kind == "AddmmBackward0" else node._saved_self
        except (AttributeError, RuntimeError):
            continue
        cast = X is not None and X.dtype in HALF                             # autocast's copies of W and b
        weight = _leaf(t_fn.next_functions[0][0], ids, incoming, cast)
        if weight is None:
            continue
        bias = _leaf(nf[0][0], ids, incoming, cast) if kind == "AddmmBackward0" and nf[0][0] is not None else None
        if X is not None and X.dim() == 2:
            found.append((node, X.detach(), weight, bias))
    return found


def _layer_cross_gram(Da: torch.Tensor, Xa: torch.Tensor, Db: torch.Tensor, Xb: torch.Tensor,
                      bias: bool) -> torch.Tensor:
    """Σ over the layer's weight (and bias) of J_a J_bᵀ from output gradients D [T, n, out] and inputs X [n, in],
    without forming J: J_a J_bᵀ [s, t] = ⟨D_a[s], K D_b[t]⟩ with K = X_a X_bᵀ (+1 for the bias) [n_a, n_b]."""
    na, nb, d_in = Xa.shape[0], Xb.shape[0], Xa.shape[1]
    if na * nb <= d_in * max(na, nb):                                         # the kernel is the smaller object
        K = Xa @ Xb.T + (1.0 if bias else 0.0)                                # [n_a, n_b]
        return torch.einsum("sbo,tbo->st", Da, torch.einsum("bc,tco->tbo", K, Db))
    Ja = torch.einsum("sbo,bi->soi", Da, Xa).flatten(1)                      # [T, out·in]
    Jb = torch.einsum("tbo,bi->toi", Db, Xb).flatten(1)
    G = Ja @ Jb.T
    return G + Da.sum(1) @ Db.sum(1).T if bias else G


class DenseJacobian:
    """A formed Jacobian J [T, d] behind the interface of :class:`FactoredJacobian` (rep mode, ``aggregate``)."""

    def __init__(self, J: torch.Tensor, params: Sequence[torch.Tensor] | None = None, unreached=()):
        if J.dim() != 2:
            raise ValueError(f"J must be a matrix [T, d], got shape {tuple(J.shape)}")
        self.J = J
        self.T, self.d = J.shape
        self.dtype, self.device = J.dtype, J.device
        self.params = None if params is None else list(params)     # the columns' parameters (for combined_grads)
        self.unreached = set(unreached)                            # ids of parameters no loss reaches
        if self.params is not None and sum(p.numel() for p in self.params) != self.d:
            raise ValueError(f"J has {self.d} columns, the parameters {sum(p.numel() for p in self.params)} entries")

    def dense(self) -> torch.Tensor:
        return self.J                                                         # [T, d]

    def gram(self) -> torch.Tensor:
        return self.J @ self.J.T                                              # [T, T]

    def sq_norms(self) -> torch.Tensor:
        return self.J.square().sum(1)                                         # [T]

    def combine(self, w: torch.Tensor) -> torch.Tensor:
        return _as_rows(w, self.T, self.J).view(-1) @ self.J                  # [d]

    def accumulate_into(self, out: torch.Tensor, *, beta: float = 1.0, scale=1.0) -> torch.Tensor:
        """out ← β·out + diag(scale)·J in place (``scale`` a number or [T]); β = 0 ignores out's values."""
        _check_out(out, self.T, self.d)
        scale = _as_rows(scale, self.T, self.J)                               # [T, 1]
        if beta == 0:
            return torch.mul(self.J, scale, out=out)
        return out.mul_(beta).add_(self.J * scale)

    def combined_grads(self, w: torch.Tensor, *, release: bool = False):
        """Σ_t w_t g_t per parameter of ``params`` (as :meth:`FactoredJacobian.combined_grads`; None for a
        parameter no loss reaches); ``release`` drops J once done."""
        if self.params is None:
            raise ValueError("combined_grads needs the parameters of J's columns: DenseJacobian(J, params=...)")
        flat = self.combine(w)                                                # [d]
        if release:
            self.J = None
        off = 0
        for p in self.params:
            yield None if id(p) in self.unreached else flat[off:off + p.numel()].view_as(p).clone()
            off += p.numel()

    def half(self) -> bool:
        return self.J.dtype in HALF

    def finite(self) -> bool:
        return bool(torch.isfinite(self.J).all())

    def to(self, dtype: torch.dtype) -> "DenseJacobian":
        """The same rows in ``dtype``."""
        return DenseJacobian(self.J.to(dtype), self.params, self.unreached)

    def scaled(self, s: float) -> "DenseJacobian":
        """J · s (unscaling a loss-scaled Jacobian)."""
        return self if s == 1 else DenseJacobian(self.J * s, self.params, self.unreached)

    def blocks(self, max_cols: int = 1 << 16):
        """(offset, J[:, offset:offset + k]) for consecutive column blocks of at most ``max_cols``."""
        for off in range(0, self.d, max_cols):
            yield off, self.J[:, off:off + max_cols]


class FactoredJacobian:
    """The Jacobian of T losses w.r.t. ``params`` kept as factors, so that J [T, d] is never formed.

    For every ``nn.Linear``-style product y = X Wᵀ + b in the losses' graph (found by walking it),
    the per-task gradients w.r.t. the layer *output* D [T, n, out] (one batched backward that
    forms no weight gradients) and the input X [n, in]: task t's weight rows are D_tᵀX, its bias
    rows Σ_n D_t. Other parameters get their rows dense. From the factors: the Gram matrix
    (⟨D_s, (XXᵀ+1) D_t⟩, TorchJD's autogram idea), squared row norms, wᵀJ, an in-place update
    out ← β·out + diag(s)·J written layer by layer with one ``baddbmm`` (the per-task state of
    DB-MTL and MoCo), and column blocks built on the fly (ExcessMTL). Columns follow
    ``flatten(params)``. The graph is retained (the caller backpropagates a combination next).
    With ``rep`` (the shared representation) and separate task heads the batched backward starts
    at ``rep`` from :func:`head_gradients` (or the given ``rep_rows``) instead of pushing T rows
    through every head; ``loop``: T ordinary backward passes instead of one vmapped one.
    """

    def __init__(self, losses: torch.Tensor, params: Sequence[torch.Tensor], *, chunk_size: int | None = None,
                 rep: torch.Tensor | None = None, loop: bool = False, rep_rows: torch.Tensor | None = None):
        if losses.dim() != 1:
            raise ValueError(f"losses must be a vector [T], got shape {tuple(losses.shape)}")
        self.params = list(params)
        if not self.params:
            raise ValueError("a Jacobian needs at least one input tensor (no shared parameters?)")
        layers = _linear_layers(losses, self.params)
        covered = {id(w) for _, _, w, _ in layers} | {id(b) for *_, b in layers if b is not None}
        rest = [p for p in self.params if id(p) not in covered]
        edges = [torch.autograd.graph.GradientEdge(node, 0) for node, *_ in layers]
        self.T = losses.numel()
        self.d = sum(p.numel() for p in self.params)
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        outs = _batched_grads(losses, edges + rest, chunk_size, rep, self.params, loop=loop,
                              rep_rows=rep_rows)                                  # None: not reached
        # per layer (D [T, n, out] or None, X [n, in], weight, bias | None); keyed by the weight's id
        self.layers = {id(w): (D, X, w, b) for (_, X, w, b), D in zip(layers, outs[:len(edges)])}
        self.rest = {id(p): g for p, g in zip(rest, outs[len(edges):])}        # [T, *p.shape] or None
        self._bias_of = {id(b): id(w) for _, _, w, b in layers if b is not None}

    def finite(self) -> bool:
        """Whether every factor is finite (a loss-scaled backward may overflow: the scaler then skips the step)."""
        ts = [t for D, X, *_ in self.layers.values() for t in (D, X) if t is not None]
        return all(bool(torch.isfinite(t).all()) for t in ts + [g for g in self.rest.values() if g is not None])

    def half(self) -> bool:
        """Whether a factor is in half precision (autocast): the Gramian is then taken in float64."""
        ts = [t for D, X, *_ in self.layers.values() for t in (D, X) if t is not None]
        return any(t.dtype in HALF for t in ts + [g for g in self.rest.values() if g is not None])

    def to(self, dtype: torch.dtype) -> "FactoredJacobian":
        """In place: every factor in ``dtype``; returns self."""
        self.layers = {k: (None if D is None else D.to(dtype), X.to(dtype), w, b)
                       for k, (D, X, w, b) in self.layers.items()}
        self.rest = {k: None if g is None else g.to(dtype) for k, g in self.rest.items()}
        self.dtype = dtype
        return self

    def scaled(self, s: float) -> "FactoredJacobian":
        """In place: J ← s·J (the output-gradient factors and dense rows times s; unscaling a loss-scaled
        Jacobian, exact for a power of two); returns self."""
        if s != 1:
            self.layers = {k: (None if D is None else D * s, X, w, b) for k, (D, X, w, b) in self.layers.items()}
            self.rest = {k: None if g is None else g * s for k, g in self.rest.items()}
        return self

    def digest(self) -> str:
        """A hash of every factor's bytes: two factored Jacobians with the same digest are bit-identical
        (the engine's cost model compares its candidate paths with it, without holding both)."""
        return digest([t for D, X, *_ in self.layers.values() for t in (D, X)] + list(self.rest.values()))

    def _rest_rows(self) -> torch.Tensor | None:
        ps = [p for p in self.params if id(p) in self.rest]
        if not ps:
            return None
        return flatten([self.rest[id(p)] if self.rest[id(p)] is not None else
                        torch.zeros(self.T, *p.shape, dtype=p.dtype, device=p.device) for p in ps], batch=self.T)

    def _pieces(self, scale=None):
        """(offset, parameter, kind, factors) per parameter in column order; D pre-multiplied by scale [T]."""
        off = 0
        for p in self.params:
            if id(p) in self.layers or id(p) in self._bias_of:
                D, X, w, _ = self.layers[self._bias_of.get(id(p), id(p))]
                if D is not None and scale is not None:
                    D = D * scale.view(-1, 1, 1).to(D.dtype)                  # [T, n, out]
                yield off, p, ("weight" if p is w else "bias"), (D, X)
            else:
                g = self.rest[id(p)]
                if g is not None and scale is not None:
                    g = g * scale.view(-1, *[1] * p.dim()).to(g.dtype)
                yield off, p, "rest", (g, None)
            off += p.numel()

    def dense(self) -> torch.Tensor:
        """J [T, d] (formed: for tests and diagnostics; the methods use the factors)."""
        out = torch.empty(self.T, self.d, dtype=self.dtype, device=self.device)
        return self.accumulate_into(out, beta=0.0)

    def gram(self, other: "FactoredJacobian | None" = None) -> torch.Tensor:
        """J Jᵀ [T, T], or with ``other`` (the same parameters, another batch's losses) J J_otherᵀ."""
        other = self if other is None else other
        if set(self.layers) != set(other.layers):
            raise RuntimeError("the loss groups' graphs use the shared layers differently; "
                               "their cross-Gramian is undefined")
        G = torch.zeros(self.T, other.T, dtype=self.dtype, device=self.device)
        for key, (Da, Xa, _, b) in self.layers.items():
            Db, Xb = other.layers[key][:2]
            if Da is not None and Db is not None:
                G += _layer_cross_gram(Da, Xa, Db, Xb, b is not None)
        for key, ra in self.rest.items():                                     # dense rows, parameter by parameter
            rb = other.rest[key]
            if ra is not None and rb is not None:
                G += ra.reshape(self.T, -1) @ rb.reshape(other.T, -1).T
        return G

    def sq_norms(self) -> torch.Tensor:
        """‖g_t‖² [T] (the Gram diagonal): per layer ⟨D_t D_tᵀ, XXᵀ + 1⟩, or ‖D_tᵀX‖² when n > in."""
        total = torch.zeros(self.T, dtype=self.dtype, device=self.device)
        for D, X, _, b in self.layers.values():
            if D is None:
                continue
            if X.shape[0] <= X.shape[1]:
                K = X @ X.T + (1.0 if b is not None else 0.0)                 # [n, n]
                total += (torch.bmm(D, D.transpose(1, 2)) * K).sum((1, 2))    # [T, n, n] → [T]
            else:
                total += torch.bmm(D.transpose(1, 2), X.expand(self.T, *X.shape)).square().sum((1, 2))
                if b is not None:
                    total += D.sum(1).square().sum(1)
        r = self._rest_rows()
        return total if r is None else total + r.square().sum(1)

    def combine(self, w: torch.Tensor) -> torch.Tensor:
        """wᵀJ [d] = Σ_t w_t g_t from the factors (one [out, n]·[n, in] product per layer)."""
        out = torch.zeros(self.d, dtype=self.dtype, device=self.device)
        off = 0
        for p, g in zip(self.params, self.combined_grads(w)):
            if g is not None:
                out[off:off + p.numel()].copy_(g.reshape(-1))
            off += p.numel()
        return out

    def combined_grads(self, w: torch.Tensor, *, release: bool = False):
        """Σ_t w_t g_t per parameter, in ``params`` order: a fresh tensor shaped like the parameter, or
        None for one the losses do not reach (as ``torch.autograd.grad(..., allow_unused=True)`` gives).
        With ``release`` each parameter's rows (or its layer's factors, once its weight and bias are
        done) are dropped as soon as its tensor is made — the object is spent afterwards — so that
        writing the tensors into ``.grad`` one by one never holds J's rows and the whole update at once."""
        w = _as_rows(w, self.T, torch.empty(0, dtype=self.dtype, device=self.device)).view(-1)   # [T]
        left = {}                                                             # layer → parameters still to do
        for p in self.params:
            key = self._bias_of.get(id(p), id(p))
            if key in self.layers:
                left[key] = left.get(key, 0) + 1
        for p in self.params:
            key = self._bias_of.get(id(p), id(p))
            if key in self.layers:
                D, X, weight, _ = self.layers[key]                            # D [T, n, out], X [n, in]
                if D is None:
                    g = None
                elif p is weight:
                    g = torch.mm(torch.tensordot(w, D, dims=1).T, X)          # (Σ_t w_t D_t)ᵀ X [out, in]
                else:
                    g = torch.tensordot(w, D.sum(1), dims=1)                  # [out]
                left[key] -= 1
                if release and left[key] == 0:
                    del self.layers[key]
            else:
                A = self.rest[id(p)]                                          # [T, *p.shape] or None
                g = None if A is None else torch.tensordot(w, A, dims=1)      # [*p.shape]
                if release:
                    del self.rest[id(p)]
            yield g

    def accumulate_into(self, out: torch.Tensor, *, beta: float = 1.0, scale=1.0) -> torch.Tensor:
        """out [T, d] ← β·out + diag(scale)·J in place, without a J temporary; β = 0 ignores out's values."""
        _check_out(out, self.T, self.d)
        s = None if isinstance(scale, (int, float)) and scale == 1 else _as_rows(scale, self.T, out).view(-1)   # [T]
        for off, p, kind, (A, X) in self._pieces(s):
            blk = out[:, off:off + p.numel()]                                 # [T, numel] (a strided view)
            if A is None:
                blk.mul_(beta) if beta != 0 else blk.zero_()
            elif kind == "weight":
                v = blk.view(self.T, *p.shape)                                # [T, out, in]
                torch.baddbmm(v, A.transpose(1, 2), X.expand(self.T, *X.shape), beta=beta, out=v)
            else:
                A = A.sum(1) if kind == "bias" else A.reshape(self.T, -1)     # [T, numel]
                blk.copy_(A) if beta == 0 else blk.mul_(beta).add_(A)
        return out

    def blocks(self, max_cols: int = 1 << 16):
        """(offset, J[:, offset:offset + k]) for column blocks, each built when asked: the blocks of a weight
        are D_tᵀX over max(1, max_cols // in) output rows at a time (k ≤ max_cols unless one row is wider).
        A weight's blocks share one buffer: each is valid until the next one is asked for (no per-block
        allocation, which on CPU costs page faults of the block's size)."""
        for off, p, kind, (A, X) in self._pieces():
            if A is None:
                yield off, torch.zeros(self.T, p.numel(), dtype=p.dtype, device=p.device)
            elif kind == "weight":
                n_out, n_in = p.shape
                rows = min(n_out, max(1, max_cols // n_in))
                Xe = X.expand(self.T, *X.shape)                               # [T, n, in]
                buf = torch.empty(self.T * rows * n_in, dtype=A.dtype, device=A.device)
                for r in range(0, n_out, rows):                               # D_t[:, rows]ᵀ X for every t
                    m = min(rows, n_out - r)
                    blk = buf[:self.T * m * n_in].view(self.T, m, n_in)
                    torch.bmm(A[:, :, r:r + m].transpose(1, 2), Xe, out=blk)
                    yield off + r * n_in, blk.view(self.T, -1)
            else:
                A = A.sum(1) if kind == "bias" else A.reshape(self.T, -1)     # [T, numel]
                for c in range(0, p.numel(), max_cols):
                    yield off + c, A[:, c:c + max_cols]


def digest(tensors: Sequence[torch.Tensor | None]) -> str:
    """SHA-1 of the tensors' dtypes, shapes and bytes in order (None counts too): equal digests mean
    bit-identical tensors."""
    h = hashlib.sha1()
    for t in tensors:
        if t is None:
            h.update(b"none;")
            continue
        t = t.detach().contiguous().cpu()
        h.update(f"{t.dtype}{tuple(t.shape)};".encode())
        h.update(t.view(-1).view(torch.uint8).numpy() if t.numel() else b"")     # the buffer, not a copy
    return h.hexdigest()


def _check_out(out: torch.Tensor, T: int, d: int) -> None:
    if out.shape != (T, d) or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous [T, d] = [{T}, {d}] tensor, got shape {tuple(out.shape)}"
                         f"{'' if out.is_contiguous() else ' (not contiguous)'}")


def _as_rows(scale, T: int, like: torch.Tensor) -> torch.Tensor:
    """A number or a [T] vector as a [T, 1] column of ``like``'s dtype and device."""
    s = torch.as_tensor(scale, dtype=like.dtype, device=like.device)
    if s.dim() == 0:
        return s.expand(T, 1)
    if s.shape != (T,):
        raise ValueError(f"scale must be a number or a vector [T] = [{T}], got shape {tuple(s.shape)}")
    return s.view(T, 1)


def full_precision(jac):
    """``jac`` (a :class:`FactoredJacobian` or :class:`DenseJacobian`) in float64 if a factor is in half precision."""
    return jac.to(torch.float64) if jac.half() else jac


def block_gramian(groups: Sequence[torch.Tensor], params: Sequence[torch.Tensor], *,
                  chunk_size: int | None = None) -> torch.Tensor:
    """The Gram matrix [ΣT_i, ΣT_i] of the stacked Jacobians of several loss vectors, each with its own
    graph (e.g. the losses of different batches), w.r.t. ``params``, without forming J for
    ``nn.Linear`` layers (see :class:`FactoredJacobian`). The graphs are retained."""
    params = list(params)
    facs = [FactoredJacobian(L.reshape(-1), params, chunk_size=chunk_size) for L in groups]
    offs = [0]
    for f in facs:
        offs.append(offs[-1] + f.T)
    G = torch.zeros(offs[-1], offs[-1], dtype=groups[0].dtype, device=groups[0].device)
    for i in range(len(facs)):
        for j in range(i + 1):
            blk = facs[i].gram(facs[j])
            G[offs[i]:offs[i + 1], offs[j]:offs[j + 1]] = blk
            G[offs[j]:offs[j + 1], offs[i]:offs[i + 1]] = blk.T
    return G


def gramian(losses: torch.Tensor, params: Sequence[torch.Tensor], *, other: torch.Tensor | None = None,
            chunk_size: int | None = None, rep: torch.Tensor | None = None,
            other_rep: torch.Tensor | None = None, loop: bool = False) -> torch.Tensor:
    """G = J Jᵀ [T, T] of ``losses`` w.r.t. ``params`` without forming J for linear layers (see
    :class:`FactoredJacobian`), or with ``other`` (the losses of another batch) the cross-Gramian J Jₒᵀ.
    ``rep`` / ``other_rep``: the shared representation in each graph (separate heads crossed once)."""
    fa = FactoredJacobian(losses.reshape(-1), params, chunk_size=chunk_size, rep=rep, loop=loop)
    if other is None:
        return fa.gram()
    return fa.gram(FactoredJacobian(other.reshape(-1), params, chunk_size=chunk_size, rep=other_rep, loop=loop))


def representation_grads(losses: torch.Tensor, z: torch.Tensor, layout: str, create_graph: bool = True) -> list:
    """δ_k = ∂L_k/∂z_k for each task k, each shaped like one task's representation [B, ...].

    ``layout="shared"``: z [B, ...] feeds every head (one backward per task, through head k only).
    ``layout="per_task"``: z [T, B, ...] with z[k] read by head k only, so one backward of Σ_k L_k
    gives every δ_k at once (METHODS.md §3.2, MTAN's z_list).
    """
    if layout == "per_task":
        D = torch.autograd.grad(losses.sum(), z, create_graph=create_graph, retain_graph=True)[0]   # [T, B, ...]
        return list(D.unbind(0))
    if layout != "shared":
        raise ValueError(f"rep layout must be 'shared' or 'per_task', got {layout!r}")
    return [torch.autograd.grad(L, z, create_graph=create_graph, retain_graph=True)[0] for L in losses]


class _Relabel(torch.autograd.Function):
    """Forward: ``value``; backward: the gradient times ``scale`` into ``losses`` (see :func:`relabel`)."""

    generate_vmap_rule = True                       # the engine's batched backward passes cross it

    @staticmethod
    def forward(losses, value, scale):
        return value.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.scale = inputs[2]

    @staticmethod
    def backward(ctx, grad):
        return (grad if ctx.scale == 1 else grad * ctx.scale), None, None


def relabel(losses: torch.Tensor, value: torch.Tensor | None = None, scale: float = 1.0) -> torch.Tensor:
    """Losses [T] whose value is ``value`` (default their own) and whose gradient is ``scale`` × theirs:
    the global batch's losses with this rank's gradients (data parallelism), or a loss scale (fp16) that
    leaves every value a method reads unchanged. Exact: no arithmetic on the values."""
    value = losses.detach() if value is None else value.detach()
    return _Relabel.apply(losses, value, float(scale))
