"""Surrogate gradients: the five used by the papers in this book.

A spiking neuron emits ``S = Θ(H - V_th)``, with ``Θ`` the Heaviside step (``Θ(x) = 1`` for
``x >= 0``, SEW ResNet eq. 2). Its derivative is zero almost everywhere, so backpropagation
replaces ``Θ'(x)`` by the derivative ``σ'(x)`` of a smooth function ``σ`` (the surrogate).
Every surrogate here is a frozen record with

* ``primitive(x)``: the smooth ``σ(x)`` that approximates ``Θ(x)`` (for plots),
* ``derivative(x)``: ``σ'(x)``, the value used as ``Θ'(x)`` in the backward pass,
* ``spike(x)``: the Heaviside forward with ``σ'`` as its gradient (an autograd function),
* ``kernel_spec()``: ``(code, p1, p2)`` for the Numba kernels, which evaluate the same formulas.

``x`` is always ``u - V_th`` (membrane potential minus threshold).

Parameter ranges: the sharpness α of ArcTan and Sigmoid and the variance α of the Gaussian must be
finite numbers in :data:`ALPHA_RANGE` = [1e-3, 1e3]. The papers use 2 (ArcTan), 4 (sigmoid) and
0.5 (Gaussian); outside the range σ' is either a spike narrower than float32's resolution around the
threshold, which almost never passes a gradient and explodes when it does, or so flat that it
passes almost none. Widths and heights (rectangular, triangle) must be finite and > 0 (a very wide
rectangle of height 1 is the "constant 1" surrogate of chapter 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from snnlab.checks import check_positive

__all__ = [
    "ALPHA_RANGE",
    "Surrogate",
    "ArcTan",
    "Sigmoid",
    "Rectangular",
    "Triangle",
    "Gaussian",
    "ZeroDerivative",
    "heaviside",
    "SURROGATES",
    "get_surrogate",
]


ALPHA_RANGE = (1e-3, 1e3)
"""Allowed α of ArcTan, Sigmoid (sharpness) and Gaussian (variance); see the module docstring."""


def _check_alpha(surrogate: "Surrogate", name: str = "alpha") -> None:
    """Check ``surrogate.<name>`` against :data:`ALPHA_RANGE` and store it as a float."""
    label = f"{type(surrogate).__name__} {name}"
    value = getattr(surrogate, name)
    if isinstance(value, torch.Tensor) and value.requires_grad:
        raise TypeError(f"{label} is a tensor that requires grad; surrogate parameters are fixed numbers "
                        f"(pass float(alpha)).")
    number = check_positive(label, value)
    low, high = ALPHA_RANGE
    if not low <= number <= high:
        raise ValueError(f"{label} must lie in [{low:g}, {high:g}] (snnlab.surrogate.ALPHA_RANGE; the papers "
                         f"use 0.5 to 4), got {number:g}: outside it the surrogate gradient is a needle that "
                         f"almost never passes a gradient, or a plateau that passes almost none.")
    object.__setattr__(surrogate, name, number)


def _check_size(surrogate: "Surrogate", name: str) -> None:
    """Check that ``surrogate.<name>`` is a finite number > 0 and store it as a float."""
    object.__setattr__(surrogate, name, check_positive(f"{type(surrogate).__name__} {name}", getattr(surrogate, name)))


def heaviside(x: torch.Tensor) -> torch.Tensor:
    """Θ(x) = 1 if x >= 0 else 0 (SEW ResNet, eq. 2), in the dtype of ``x``."""
    return (x >= 0).to(x.dtype)


class _SpikeFunction(torch.autograd.Function):
    """Heaviside forward, surrogate derivative backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, surrogate: "Surrogate") -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        ctx.surrogate = surrogate
        return heaviside(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad_output * ctx.surrogate.derivative(x), None


@dataclass(frozen=True)
class Surrogate:
    """Base class. Subclasses define ``primitive`` and ``derivative``."""

    code: ClassVar[int] = -1
    source: ClassVar[str] = ""

    def primitive(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def derivative(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def kernel_spec(self) -> tuple[int, float, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def spike(self, x: torch.Tensor) -> torch.Tensor:
        """Θ(x) in the forward pass; ``derivative(x)`` in the backward pass."""
        return _SpikeFunction.apply(x, self)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.spike(x)


@dataclass(frozen=True)
class ArcTan(Surrogate):
    """σ(x) = arctan(π/2·αx)/π + 1/2,  σ'(x) = α / (2(1 + (π/2·αx)²)).

    Source: SEW ResNet (Fang et al., 2021), section 4 and appendix; the paper trains with α = 2.
    Checkable values (SEW ResNet): V_th=1, α=2 gives σ'(1-V_th)=1 and σ'(0-V_th)=0.092.
    """

    alpha: float = 2.0
    code: ClassVar[int] = 0
    source: ClassVar[str] = "SEW ResNet (ArcTan)"

    def __post_init__(self) -> None:
        _check_alpha(self)

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        return torch.atan(math.pi / 2 * self.alpha * x) / math.pi + 0.5

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return self.alpha / (2 * (1 + (math.pi / 2 * self.alpha * x) ** 2))

    def kernel_spec(self) -> tuple[int, float, float]:
        return (self.code, float(self.alpha), 0.0)


@dataclass(frozen=True)
class Sigmoid(Surrogate):
    """σ(x) = sigmoid(αx),  σ'(x) = α·sigmoid(αx)(1 - sigmoid(αx)).

    Source: OTTT patent CN114998659B, [0103]: ∂s/∂u = 4·e^{4(V_th-u)} / (1+e^{4(V_th-u)})², i.e. α = 4
    (the default surrogate of OTTT and of the authors' code).
    """

    alpha: float = 4.0
    code: ClassVar[int] = 1
    source: ClassVar[str] = "OTTT (sigmoid, α=4)"

    def __post_init__(self) -> None:
        _check_alpha(self)

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.alpha * x)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.alpha * x)
        return self.alpha * s * (1 - s)

    def kernel_spec(self) -> tuple[int, float, float]:
        return (self.code, float(self.alpha), 0.0)


@dataclass(frozen=True)
class Rectangular(Surrogate):
    """σ'(x) = height · 1[|x| < width/2]; ``height`` defaults to 1/width (unit area).

    Sources: MLF / DS-ResNet (Qu et al., 2024) and its code: width a = 1, height 1/a, for every level.
    OTTT patent [0103]: ∂s/∂u = 1[|u - V_th| < V_th], i.e. ``Rectangular(width=2*V_th, height=1)``.
    """

    width: float = 1.0
    height: float | None = None
    code: ClassVar[int] = 2
    source: ClassVar[str] = "MLF / OTTT (rectangular)"

    def __post_init__(self) -> None:
        _check_size(self, "width")
        if self.height is not None:
            _check_size(self, "height")

    @property
    def peak(self) -> float:
        return float(self.height) if self.height is not None else 1.0 / self.width

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        half = self.width / 2
        return torch.clamp(self.peak * (x + half), 0.0, self.peak * self.width)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return self.peak * (x.abs() < self.width / 2).to(x.dtype)

    def kernel_spec(self) -> tuple[int, float, float]:
        return (self.code, float(self.width), self.peak)


@dataclass(frozen=True)
class Triangle(Surrogate):
    """σ'(x) = max(0, 1 - |x|/width).

    Source: ATSN (Li et al., 2024), eq. (14): ∂s/∂u = max(0, 1 - |u - V_th|/V_th), i.e. width = V_th.
    Also the default of the SLTT code.
    """

    width: float = 1.0
    code: ClassVar[int] = 3
    source: ClassVar[str] = "ATSN eq. (14) (triangle)"

    def __post_init__(self) -> None:
        _check_size(self, "width")

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        w = self.width
        xc = torch.clamp(x, -w, w)
        # integral of the triangle from -w to x
        left = (xc + w) ** 2 / (2 * w)
        right = w / 2 + xc - xc**2 / (2 * w)
        return torch.where(xc < 0, left, right)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(1 - x.abs() / self.width, min=0.0)

    def kernel_spec(self) -> tuple[int, float, float]:
        return (self.code, float(self.width), 0.0)


@dataclass(frozen=True)
class Gaussian(Surrogate):
    """σ'(x) = exp(-x²/(2α)) / sqrt(2πα), α the variance.

    Source: STBP (Wu et al., 2018), as quoted in ATSN (Li et al., 2024), eq. (4).
    """

    alpha: float = 0.5
    code: ClassVar[int] = 4
    source: ClassVar[str] = "STBP / ATSN eq. (4) (Gaussian)"

    def __post_init__(self) -> None:
        _check_alpha(self)  # the variance

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (1 + torch.erf(x / math.sqrt(2 * self.alpha)))

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(-(x**2) / (2 * self.alpha)) / math.sqrt(2 * math.pi * self.alpha)

    def kernel_spec(self) -> tuple[int, float, float]:
        return (self.code, float(self.alpha), 0.0)


@dataclass(frozen=True)
class ZeroDerivative(Surrogate):
    """No surrogate: Θ's own derivative, σ'(x) = 0 (exact for every x ≠ 0; at x = 0 it is a Dirac
    delta, which no finite value represents).

    Training with it is plain backpropagation through the spike: every gradient that has to pass a
    spike is exactly zero. Chapter 1 trains with it to measure what the surrogate is for. It is not
    one of the papers' surrogates and is not in :data:`SURROGATES`. The kernels run it as a
    rectangular window of height 0.
    """

    code: ClassVar[int] = Rectangular.code
    source: ClassVar[str] = "the Heaviside step's true derivative (no surrogate)"

    def primitive(self, x: torch.Tensor) -> torch.Tensor:
        return heaviside(x)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)

    def kernel_spec(self) -> tuple[int, float, float]:
        return (self.code, 1.0, 0.0)


SURROGATES: dict[str, type[Surrogate]] = {
    "arctan": ArcTan,
    "sigmoid": Sigmoid,
    "rectangular": Rectangular,
    "triangle": Triangle,
    "gaussian": Gaussian,
}


def get_surrogate(name: str | Surrogate, **params: float) -> Surrogate:
    """A surrogate by name (``"arctan"``, ``"sigmoid"``, ...) or pass one through unchanged."""
    if isinstance(name, Surrogate):
        if params:
            raise ValueError("pass either a Surrogate instance or a name with parameters, not both.")
        return name
    if not isinstance(name, str) or name.lower() not in SURROGATES:
        valid = ", ".join(sorted(SURROGATES))
        raise ValueError(f"unknown surrogate {name!r}; valid names: {valid}.")
    return SURROGATES[name.lower()](**params)
