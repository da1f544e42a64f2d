"""Spike-element-wise (SEW) connect functions g(A, S) (SEW ResNet, Fang et al. 2021, eq. 9, Table 1).

``A`` is the output of the last spiking neuron of the residual branch, ``A = SN(F(S))``, and ``S``
the block's identity input (or the downsample shortcut's spikes). The argument order follows the
authors' code (fangwei123456/Spike-Element-Wise-ResNet): ``g(out, identity)``.

======  =====================  ====================================  =======================
name    g(A, S)                identity mapping when                 output
======  =====================  ====================================  =======================
ADD     A + S                  A ≡ 0 (last BN weight = bias = 0)     integers in 0..k+1
AND     A · S  (A ∧ S)         A ≡ 1 (BN weight 0, bias >= V_th)     binary
IAND    (1 - A) · S  (¬A ∧ S)  A ≡ 0                                 binary
======  =====================  ====================================  =======================
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CONNECT_FUNCTIONS", "sew_connect", "SEWConnect", "check_connect"]

CONNECT_FUNCTIONS = ("ADD", "AND", "IAND")


def check_connect(cnf: str) -> str:
    """Normalise a connect-function name (``"add"`` -> ``"ADD"``); unknown names raise."""
    if not isinstance(cnf, str) or cnf.upper() not in CONNECT_FUNCTIONS:
        raise ValueError(f"unknown SEW connect function {cnf!r}; valid: {', '.join(CONNECT_FUNCTIONS)}.")
    return cnf.upper()


def sew_connect(a: torch.Tensor, s: torch.Tensor, cnf: str) -> torch.Tensor:
    """g(A, S) of SEW ResNet, Table 1: ADD ``A + S``, AND ``A * S``, IAND ``(1 - A) * S``.

    ``a`` is the residual branch's spikes, ``s`` the identity (shortcut) input; same shape.
    """
    cnf = check_connect(cnf)
    if a.shape != s.shape:
        raise ValueError(f"SEW connect {cnf}: residual {tuple(a.shape)} and identity {tuple(s.shape)} shapes differ.")
    if cnf == "ADD":
        return a + s
    if cnf == "AND":
        return a * s
    return (1.0 - a) * s


class SEWConnect(nn.Module):
    """Module form of :func:`sew_connect`: ``forward(a, s) = g(a, s)``."""

    def __init__(self, cnf: str = "ADD") -> None:
        super().__init__()
        self.cnf = check_connect(cnf)

    def forward(self, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return sew_connect(a, s, self.cnf)

    def extra_repr(self) -> str:
        return self.cnf
