"""Gradients through deep spiking residual networks (SEW ResNet, Fang et al. 2021, sec. 3.2-3.3, 4.1, A.4).

* :func:`eq8_product`: the gradient through ``k`` identity-mapping Spiking ResNet blocks,
  ``Π_i Θ'(S^{l+i} - V_th) = σ'(S - V_th)^k`` elementwise (eq. 8).
* :func:`identity_chain_gradient`: the same quantity measured by autograd through ``k`` real,
  zero-initialised blocks of :mod:`snnlab.layers.residual` (Spiking ResNet -> eq. 8; SEW -> eq. 11, = 1).
* :func:`eq15_product_norm` / :func:`eq15_prediction`: the appendix's norm of that product for a
  firing rate Φ (eq. 15), and the gradient norm it predicts block by block.
* :func:`block_statistics`: firing rates of each block's input S^l, output O^l and last SN A^l, and
  the gradient norm ‖∂L/∂S^l‖ of each block, measured with hooks (Figs. 5-8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from snnlab.checks import check_in_range, check_non_negative, check_positive, check_tensor
from snnlab.layers.residual import BasicBlock, ResidualBlock
from snnlab.neurons import reset_states
from snnlab.surrogate import Surrogate

__all__ = [
    "eq8_product",
    "identity_chain_gradient",
    "eq15_product_norm",
    "eq15_prediction",
    "BlockStatistics",
    "block_statistics",
    "eq15_block_prediction",
    "INIT_NETWORKS",
    "initialisation_sweep",
]


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k (number of blocks) must be an int >= 0, got {k!r}.")
    return k


def eq8_product(spikes: torch.Tensor, k: int, *, v_threshold: float, surrogate: Surrogate) -> torch.Tensor:
    """SEW ResNet, eq. (8): ``∂O^{l+k-1}_j / ∂S^l_j = Π_{i<k} Θ'(S^{l+i}_j - V_th) = σ'(S_j - V_th)^k``.

    In an identity-mapping chain every block passes the same spikes on, so the factor is the same in
    every block: ``σ'(1 - V_th)^k`` where ``S = 1`` and ``σ'(0 - V_th)^k`` where ``S = 0``.
    """
    check_tensor("spikes", spikes)
    check_positive("v_threshold", v_threshold)
    return surrogate.derivative(spikes - v_threshold) ** _check_k(k)


def identity_chain_gradient(
    spikes: torch.Tensor,
    k: int,
    *,
    kind: str = "spiking",
    cnf: str = "ADD",
    v_threshold: float = 1.0,
    surrogate: Surrogate | str = "arctan",
    alpha: float | None = None,
    seed: int = 0,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Push ``spikes`` ``[T, B, C, H, W]`` through ``k`` zero-initialised basic blocks (IF neurons)
    and return ``(output, gradient)``: the last block's output and ``∂(Σ O^{l+k-1}) / ∂S^l``.

    Zero-init makes every block an identity mapping (section 3.3) and cuts the residual branch's
    gradient (its last BN weight is 0), so the gradient is elementwise: eq. (8) for
    ``kind="spiking"``, eq. (11) (exactly 1) for ``kind="sew"``. With ``T = 1`` the measurement
    equals eq. (8) exactly; with ``T > 1`` the IF neurons' membrane also carries gradient from later
    steps (eq. 8 considers one step), see the chapter.
    """
    check_tensor("spikes [T, B, C, H, W]", spikes, dims=5)
    if not torch.all((spikes == 0) | (spikes == 1)):
        raise ValueError("identity_chain_gradient needs binary spikes (0/1).")
    torch.manual_seed(seed)
    c = spikes.shape[2]
    options = dict(kind=kind, cnf=cnf, v_threshold=v_threshold, surrogate=surrogate, alpha=alpha, backend=backend)
    blocks = nn.Sequential(*(BasicBlock(c, c, 1, **options).zero_init_() for _ in range(_check_k(k))))
    s = spikes.detach().clone().requires_grad_(True)
    out = blocks(s)
    if k == 0:
        return out.detach(), torch.ones_like(s)
    (grad,) = torch.autograd.grad(out.sum(), s)
    return out.detach(), grad


def eq15_product_norm(n: float, phi: float, d_one: float, d_zero: float, k: int) -> float:
    """SEW ResNet, appendix eq. (15): ``‖Π_{i<k} Θ'(S^{l+i} - V_th)‖ =
    sqrt(NT·Φ·Θ'(1 - V_th)^{2k} + NT·(1 - Φ)·Θ'(0 - V_th)^{2k})``, with ``n = N·T`` elements of
    which a fraction ``phi`` (Φ, the firing rate) are spikes; ``d_one = σ'(1 - V_th)``,
    ``d_zero = σ'(0 - V_th)``."""
    check_positive("n (N·T)", n)
    check_in_range("phi (firing rate)", phi, 0.0, 1.0)
    _check_k(k)
    return math.sqrt(n * phi * d_one ** (2 * k) + n * (1.0 - phi) * d_zero ** (2 * k))


def eq15_prediction(grad_out_norm: float, phi: float, d_one: float, d_zero: float, k: int) -> float:
    """‖∂L/∂S^l‖ predicted from ‖∂L/∂O^{l+k-1}‖ by eq. (15), read as a root-mean-square.

    Eq. (15) multiplies the two norms, which overcounts by ``sqrt(NT)`` (at ``k = 0`` it would give
    ``‖∂L/∂O‖·sqrt(NT)`` instead of ``‖∂L/∂O‖``). If the upstream gradient's entries are independent
    of which elements spiked, the expected squared norm is ``‖∂L/∂O‖²·(Φ·d1^{2k} + (1-Φ)·d0^{2k})``;
    this function returns its square root, ``‖∂L/∂O‖ · eq15_product_norm(1, Φ, d1, d0, k)``.
    """
    check_non_negative("grad_out_norm", grad_out_norm)
    return float(grad_out_norm) * eq15_product_norm(1.0, phi, d_one, d_zero, k)


@dataclass
class BlockStatistics:
    """Per-block measurements of one forward/backward pass (SEW ResNet, Figs. 5-8)."""

    s_rate: np.ndarray
    """mean of each block's input S^l (a firing rate for binary spikes)"""
    o_rate: np.ndarray
    """mean of each block's output O^l (for ADD not binary: the mean, as in the paper's Fig. 5a)"""
    a_rate: np.ndarray
    """firing rate of each block's last SN, A^l (= O^l for Spiking ResNet and plain blocks)"""
    grad_norm: np.ndarray
    """‖∂L/∂S^l‖ (Frobenius norm over T, batch and neurons)"""
    grad_out_last: float
    """‖∂L/∂O^L‖ of the last block"""
    downsample: list[int] = field(default_factory=list)
    """indices of the downsample blocks"""
    loss: float = float("nan")


def block_statistics(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    blocks: list[ResidualBlock] | None = None,
) -> BlockStatistics:
    """Run ``loss_fn(model(x), y)`` forward and backward once and measure every residual block.

    ``blocks`` defaults to ``model.blocks`` (the SEW/Spiking ResNet layouts and 7B-Nets have it).
    The model's parameter gradients are left as they were (the pass uses ``torch.autograd.grad``).
    """
    blocks = list(model.blocks if blocks is None else blocks)
    if not blocks:
        raise ValueError("the model has no residual blocks to measure.")
    n = len(blocks)
    s_rate, o_rate, a_rate = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    inputs: list[torch.Tensor | None] = [None] * n
    last_out: list[torch.Tensor] = []
    handles = []

    def block_hook(i):
        def hook(module, args, out):
            s = args[0]
            s_rate[i] = float(s.detach().mean())
            o_rate[i] = float(out.detach().mean())
            inputs[i] = s
            if i == n - 1:
                last_out.append(out)
        return hook

    def sn_hook(i):
        def hook(module, args, out):
            a_rate[i] = float(out.detach().mean())
        return hook

    for i, b in enumerate(blocks):
        handles.append(b.register_forward_hook(block_hook(i)))
        handles.append(b.last_sn.register_forward_hook(sn_hook(i)))
    try:
        reset_states(model)
        loss = loss_fn(model(x), y)
    finally:
        for h in handles:
            h.remove()
    if any(s is None or not s.requires_grad for s in inputs):
        raise ValueError("a block input does not require grad; call block_statistics in training mode "
                         "with parameters that require grad.")
    grads = torch.autograd.grad(loss, [*inputs, last_out[0]])
    reset_states(model)
    return BlockStatistics(
        s_rate=s_rate, o_rate=o_rate, a_rate=a_rate,
        grad_norm=np.array([float(g.norm()) for g in grads[:n]]),
        grad_out_last=float(grads[n].norm()),
        downsample=[i for i, b in enumerate(blocks) if b.is_downsample],
        loss=float(loss.detach()),
    )


def eq15_block_prediction(stats: BlockStatistics, *, v_threshold: float, surrogate: Surrogate) -> np.ndarray:
    """Eq. (15)'s prediction of ‖∂L/∂S^l‖ for every block inside an identity-mapping region.

    A region is a run of non-downsample blocks ``l .. b``; its output gradient ‖∂L/∂O^b‖ is the
    measured gradient at the next block's input (or after the last block). For block ``l`` in the
    region, ``k = b - l + 1`` and Φ is the firing rate of S^l:
    ``‖∂L/∂O^b‖ · sqrt(Φ·σ'(1-V_th)^{2k} + (1-Φ)·σ'(0-V_th)^{2k})`` (:func:`eq15_prediction`).
    Valid for zero-initialised Spiking ResNets with IF neurons; NaN for downsample blocks.
    """
    d_one = float(surrogate.derivative(torch.tensor(1.0 - v_threshold)))
    d_zero = float(surrogate.derivative(torch.tensor(0.0 - v_threshold)))
    n = len(stats.grad_norm)
    pred = np.full(n, np.nan)
    down = set(stats.downsample)
    for l in range(n):
        if l in down:
            continue
        b = l
        while b + 1 < n and b + 1 not in down:
            b += 1
        g_out = stats.grad_norm[b + 1] if b + 1 < n else stats.grad_out_last
        phi = float(np.clip(stats.s_rate[l], 0.0, 1.0))
        pred[l] = eq15_prediction(g_out, phi, d_one, d_zero, b - l + 1)
    return pred


INIT_NETWORKS: dict[str, dict] = {
    "Spiking ResNet": {"kind": "spiking"},
    "SEW ADD": {"kind": "sew", "cnf": "ADD"},
    "SEW AND": {"kind": "sew", "cnf": "AND"},
    "SEW IAND": {"kind": "sew", "cnf": "IAND"},
}
"""The four networks of SEW ResNet's Figs. 5-8."""


def initialisation_sweep(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    v_thresholds: tuple[float, ...] = (1.0, 0.5),
    alphas: tuple[float, ...] = (2.0, 3.0),
    networks: dict[str, dict] = INIT_NETWORKS,
    zero_init: tuple[bool, ...] = (False, True),
    depth: int = 152,
    width: int = 64,
    num_classes: int = 10,
    seed: int = 0,
    progress: bool = True,
    **neuron_options,
) -> dict[tuple[str, bool, float, float], BlockStatistics]:
    """:func:`block_statistics` at initialisation for every network, zero-init choice, V_th and α.

    ``x`` is ``[T, B, C, H, W]``; the loss is cross-entropy of the mean output over T (the paper's
    classification of the averaged output). Every network is built from ``seed``, so all (V_th, α)
    settings of one network share their initial weights, as in the paper's "same initialization".
    ``neuron_options`` go to every neuron (e.g. ``backend="torch"``).
    Returns ``{(network, zero_init, V_th, α): BlockStatistics}``.
    """
    from tqdm.auto import tqdm

    from snnlab.models.sew_resnet import SpikingResNetLayout

    check_tensor("x [T, B, C, H, W]", x, dims=5)
    loss_fn = lambda out, target: nn.functional.cross_entropy(out.mean(0), target)  # noqa: E731
    jobs = [(n, z, v, a) for n in networks for z in zero_init for v in v_thresholds for a in alphas]
    results = {}
    # with progress on, tqdm's own default decides (TQDM_DISABLE=1 switches it off, as the book build does)
    bar_options = {} if progress else {"disable": True}
    for name, zi, v_th, alpha in tqdm(jobs, desc="networks at initialisation", **bar_options):
        torch.manual_seed(seed)
        net = SpikingResNetLayout(depth, num_classes=num_classes, input_shape=tuple(x.shape[2:]), width=width,
                                  zero_init=zi, v_threshold=v_th, alpha=alpha, **networks[name], **neuron_options)
        results[(name, zi, v_th, alpha)] = block_statistics(net, x, y, loss_fn)
    return results
