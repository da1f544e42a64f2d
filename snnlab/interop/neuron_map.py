r"""snnlab's discrete-time neurons as NIR's continuous-time primitives, and back.

NIR (Pedersen et al., Nature Communications 2024; package ``nir`` 1.0) describes neurons as ODEs
and leaves the time step to the reader. snnlab's neurons are discrete updates with no time unit
(SEW ResNet eqs. 1-5, OTTT eq. 2; :mod:`snnlab.neurons.functional`). With ``k = 1/τ_s`` (τ_s is
snnlab's ``tau``, a number of steps), leak target ``V_L`` (``v_reset`` for a hard reset, 0 for a
soft one) and input ``X[t]``:

.. code-block:: text

    LIF, decay_input=True  (SEW):   H[t] = V[t-1] - k (V[t-1] - V_L) + k X[t]
    LIF, decay_input=False (OTTT):  H[t] = V[t-1] - k (V[t-1] - V_L) +   X[t]
    IF:                             H[t] = V[t-1]                    +   X[t]
    fire:                           S[t] = Θ(H[t] - V_th)            (Θ(0) = 1)
    hard reset:                     V[t] = V_reset  where S[t] = 1, else H[t]
    soft reset:                     V[t] = H[t] - V_th S[t]

NIR's LIF is ``τ dv/dt = (v_leak - v) + R I`` with ``z = [v > v_threshold]`` and ``v <- v_reset``
on a spike; its IF is ``dv/dt = R I``; its LI (leaky integrator) is LIF without spike or reset,
and I is IF without them. Read with forward Euler at step ``dt``, the input held over the step
(``I(s) = X[t]`` for ``s`` in the step: what SpikingJelly, snnTorch and Norse do), one step is

.. code-block:: text

    v[t] = v[t-1] - (dt/τ)(v[t-1] - v_leak) + (dt R/τ) X[t]          (LIF, LI)
    v[t] = v[t-1] + dt R X[t]                                        (IF, I)

and matching coefficients gives the mapping this module implements:

===================================  =============  =====================  ===========  ==========
snnlab                               NIR node       τ                      R            v_leak
===================================  =============  =====================  ===========  ==========
LIF, decay_input=True                LIF            τ_s·dt                 1            V_L
LIF, decay_input=False               LIF            τ_s·dt                 τ_s          V_L
PLIF (τ_s = 1/sigmoid(w), learned)   LIF            τ_s·dt at export       as LIF       V_L
IF                                   IF             (none)                 1/dt         (none)
NonSpikingIntegrator, decay λ < 1    LI             dt/(1-λ)               1/(1-λ)      0
NonSpikingIntegrator, decay λ = 1    I              (none)                 1/dt         (none)
===================================  =============  =====================  ===========  ==========

plus ``v_threshold = V_th`` and ``v_reset = V_reset``. The mapping is exact (the same potentials
and spikes, step for step) under these conditions:

1. **The reader uses forward Euler with the same dt** (the graph records it as ``metadata["dt"]``,
   in seconds; see :func:`snnlab.interop.to_nir`). NIR itself does not fix dt: a reader that
   assumes another one changes every ``dt/τ`` and ``dt·R`` (snnTorch's importer assumes 1e-4 s and
   gives no spikes for a graph written at 1e-3 s). A leak per step ``dt/τ = 1/τ_s`` needs
   ``τ_s >= 1`` (snnlab refuses ``tau < 1``: forward Euler would overshoot the leak target).
2. **Ties at the threshold.** snnlab fires when ``H >= V_th``, NIR when ``v > v_threshold``;
   the two differ only when a potential equals the threshold exactly (measure zero for real-valued
   input; possible with integer-valued weights and inputs).
3. **Neurons start at rest**, ``v = V_L`` (what snnlab and SpikingJelly do; NIR does not say).
4. **PLIF's τ is a snapshot.** NIR has no learnable parameters: the exported τ is the learned
   ``1/sigmoid(w)`` at export time; the node's metadata (``snnlab_neuron = "PLIFNode"``,
   ``snnlab_plif_w``) lets snnlab rebuild a PLIF whose τ keeps learning, bit for bit.
5. **Hard reset** is NIR's ``v_reset`` (NIR PR #129; ``nir`` >= 1.0.5 reads it). NIR 1.0 has **no
   soft (subtractive) reset**: its IF/LIF always reset to ``v_reset``. snnlab writes a soft-reset
   neuron the way the spike response model does (and NIR issue #137 proposes): a membrane (LI, or
   I for IF) followed by a ``Threshold`` node, whose spikes feed back through a ``Scale`` node into
   the membrane's input one step later. Unrolling the soft reset, ``H[t] = (1-k) H[t-1] +
   c X[t] - (1-k) V_th S[t-1]`` with the input gain ``c`` (``k`` for decayed input, 1 otherwise),
   so the feedback weight is ``w = -(1-k) V_th / c``: ``-(τ_s-1) V_th`` (decayed input),
   ``-(1-1/τ_s) V_th`` (undecayed input), ``-V_th`` (IF). This is exact for a reader that delays a
   recurrent edge by one step (nirtorch, hence SpikingJelly and snnTorch, does), and it needs the
   reader to support LI/I, Threshold and Scale nodes and cycles: SpikingJelly 2.0's importer does
   not, so a soft-reset network exported by snnlab is read back by snnlab (which recognises the
   loop and rebuilds the snnlab neuron) and by readers of the plain NIR primitives.

Importing inverts the table and checks it: an IF node must have ``R·dt = 1``, a LIF node ``R = 1``
or ``R = τ/dt``, ``v_leak = v_reset``, an LI node ``R = τ/dt`` and ``v_leak = 0``, every
parameter uniform over the layer (snnlab neurons have one τ and one threshold per layer).
Otherwise the error names the node, the rule, and the dt the node's parameters imply (``1/R`` for
IF, ``τ/R`` for an undecayed-input LIF), which is how a dt mismatch shows up in a graph that does
not record its dt. A decayed-input LIF (``R = 1``) read with a wrong dt is not detectable from its
parameters (only τ_s changes), which is why the dt recorded in the graph's metadata is checked first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np
import torch

from snnlab.neurons import BaseNode, IFNode, LIFNode, NonSpikingIntegrator, PLIFNode
from snnlab.surrogate import Surrogate, get_surrogate

__all__ = [
    "Fragment",
    "neuron_fragment",
    "integrator_fragment",
    "soft_reset_weight",
    "NeuronOptions",
    "spiking_neuron_from_nir",
    "integrator_from_nir",
    "soft_reset_neuron_from_nir",
    "uniform_value",
    "RTOL",
]

RTOL = 1e-6
"""Relative tolerance of the import checks (``R·dt = 1`` etc.): float32 parameters, float64 dt."""


@dataclass
class Fragment:
    """The NIR nodes one snnlab layer becomes: ``nodes`` keyed by a suffix of the layer's name
    (``""`` for a single node), ``edges`` between them, the suffix that receives the layer's input
    (``entry``) and the one that carries its output (``exit``)."""

    nodes: dict[str, nir.NIRNode]
    edges: list[tuple[str, str]] = field(default_factory=list)
    entry: str = ""
    exit: str = ""


def _steps(tau_seconds: float, dt: float) -> float:
    """τ/dt in steps, without the float64 noise of the division (0.002/0.001 -> 2.0, not
    2.0000000000000004): rounded to 12 significant digits, far below float32's 7."""
    ratio = float(tau_seconds) / float(dt)
    return float(f"{ratio:.12g}")


def _full(shape: tuple[int, ...], value: float) -> np.ndarray:
    return np.full(shape, float(value), dtype=np.float64)


def soft_reset_weight(inv_tau: float, v_threshold: float, decay_input: bool, kind: str) -> float:
    """The feedback weight ``w = -(1-k) V_th / c`` of the soft-reset loop (module docstring, 5)."""
    if kind == "if":
        return -float(v_threshold)
    k = float(inv_tau)
    gain = k if decay_input else 1.0
    return -(1.0 - k) * float(v_threshold) / gain


def _tau_steps(module: BaseNode) -> float:
    """τ_s of an LIF layer; PLIF's is its learned 1/sigmoid(w) (float32, as the kernels use it)."""
    if isinstance(module, PLIFNode):
        return 1.0 / float(torch.sigmoid(module.w.detach().float()))
    return float(module.params.tau)


def neuron_fragment(module: BaseNode, shape: tuple[int, ...], dt: float) -> Fragment:
    """The NIR nodes of an snnlab IF/LIF/PLIF layer on per-sample ``shape`` (module docstring)."""
    p = module.params
    kind = "if" if isinstance(module, IFNode) else "lif"
    tau_s = _tau_steps(module) if kind == "lif" else None
    meta: dict[str, Any] = {"snnlab_neuron": type(module).__name__}
    if isinstance(module, PLIFNode):
        meta["snnlab_plif_w"] = float(module.w.detach())
    if kind == "lif":
        tau = _full(shape, tau_s * dt)
        r = _full(shape, 1.0 if p.decay_input else tau_s)
    if not p.soft_reset:
        v_reset = _full(shape, p.v_reset)
        v_th = _full(shape, p.v_threshold)
        if kind == "if":
            node = nir.IF(r=_full(shape, 1.0 / dt), v_threshold=v_th, v_reset=v_reset, metadata=meta)
        else:
            node = nir.LIF(tau=tau, r=r, v_leak=v_reset.copy(), v_threshold=v_th, v_reset=v_reset, metadata=meta)
        return Fragment({"": node})
    meta = dict(meta, snnlab_reset="soft")
    if kind == "if":
        membrane = nir.I(r=_full(shape, 1.0 / dt), metadata=meta)
    else:
        membrane = nir.LI(tau=tau, r=r, v_leak=_full(shape, 0.0), metadata=meta)
    w = soft_reset_weight(1.0 / tau_s if kind == "lif" else 1.0, p.v_threshold, p.decay_input, kind)
    nodes = {
        ".membrane": membrane,
        ".fire": nir.Threshold(threshold=_full(shape, p.v_threshold), metadata={"snnlab_role": "spike"}),
        ".reset": nir.Scale(scale=_full(shape, w), metadata={"snnlab_role": "soft reset: -(1-k) V_th / c"}),
    }
    edges = [(".membrane", ".fire"), (".fire", ".reset"), (".reset", ".membrane")]
    return Fragment(nodes, edges, entry=".membrane", exit=".fire")


def integrator_fragment(module: NonSpikingIntegrator, shape: tuple[int, ...], dt: float) -> Fragment:
    """ATSN's / OTTT's non-spiking output layer ``V = λV + X``: an LI node (λ < 1) or an I node (λ = 1)."""
    decay = float(module.decay)
    meta = {"snnlab_neuron": "NonSpikingIntegrator"}
    if decay == 1.0:
        return Fragment({"": nir.I(r=_full(shape, 1.0 / dt), metadata=meta)})
    return Fragment({"": nir.LI(tau=_full(shape, dt / (1.0 - decay)), r=_full(shape, 1.0 / (1.0 - decay)),
                                v_leak=_full(shape, 0.0), metadata=meta)})


# -- import --------------------------------------------------------------------------------------


def uniform_value(values: Any, what: str, node: str) -> float:
    """The one value of a per-neuron parameter array, or an error naming the node: snnlab's
    neuron layers have one τ, threshold and reset per layer."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        raise ValueError(f"NIR node {node!r}: its {what} is empty.")
    first = float(array.reshape(-1)[0])
    if not np.allclose(array, first, rtol=RTOL, atol=0.0):
        raise ValueError(
            f"NIR node {node!r}: its {what} differs between neurons (from {array.min():.6g} to "
            f"{array.max():.6g}); snnlab's neuron layers share one {what} per layer.")
    if not math.isfinite(first):
        raise ValueError(f"NIR node {node!r}: its {what} is {first}; expected a finite number.")
    return first


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=RTOL, abs_tol=0.0)


def _check_unit_gain(node: nir.NIRNode, name: str, dt: float, what: str) -> None:
    """IF and I nodes: snnlab adds the input unscaled (``V + X``), which is NIR's ``dv/dt = R I`` only
    with ``R·dt = 1``; otherwise name the dt the node was written for, ``1/R``."""
    r = uniform_value(node.r, "r", name)
    if not _close(r * dt, 1.0):
        layer = "integrator" if isinstance(node, nir.I) and not what else "IF"
        raise ValueError(
            f"NIR node {name!r} ({type(node).__name__}{what}): r = {r:.6g}, but snnlab's {layer} (V + X) needs "
            f"r = 1/dt = {1.0 / dt:.6g} at dt = {dt:g} s. The node was written for dt = 1/r = {1.0 / r:.6g} s.")


@dataclass(frozen=True)
class NeuronOptions:
    """What a NIR graph does not say about its neurons, for training the imported network: the
    surrogate gradient (default ArcTan with α = 2, SEW ResNet's), whether the reset is detached
    from the graph (default True, as SEW ResNet and OTTT train) and the neurons' backend."""

    surrogate: Surrogate | str = "arctan"
    detach_reset: bool = True
    backend: str = "auto"

    def kwargs(self) -> dict[str, Any]:
        return dict(surrogate=get_surrogate(self.surrogate), detach_reset=self.detach_reset,
                    step_mode="m", backend=self.backend)


def _lif_steps(node: nir.NIRNode, name: str, dt: float) -> float:
    tau_s = _steps(uniform_value(node.tau, "tau", name), dt)
    if tau_s < 1.0 and not _close(tau_s, 1.0):
        raise ValueError(
            f"NIR node {name!r} ({type(node).__name__}): tau/dt = {tau_s:.6g} < 1 at dt = {dt:g} s, so forward "
            f"Euler would overshoot the leak (snnlab needs tau >= dt). Was the graph written for a smaller dt?")
    return max(tau_s, 1.0)


def _lif_charge(node: nir.NIRNode, name: str, tau_s: float, dt: float) -> bool:
    """decay_input from R: 1 (decayed input) or τ/dt (undecayed); anything else is refused."""
    r = uniform_value(node.r, "r", name)
    if _close(r, 1.0):
        return True
    if _close(r, tau_s):
        return False
    tau = uniform_value(node.tau, "tau", name)
    raise ValueError(
        f"NIR node {name!r} ({type(node).__name__}): r = {r:.6g} is neither 1 (snnlab's decayed-input charge, "
        f"H = V + (X - (V - V_L))/tau) nor tau/dt = {tau_s:.6g} (undecayed input, H = V - (V - V_L)/tau + X) at "
        f"dt = {dt:g} s. If it was written with r = tau/dt, its dt was tau/r = {tau / r:.6g} s: pass that dt.")


def spiking_neuron_from_nir(node: nir.NIRNode, name: str, dt: float, options: NeuronOptions) -> BaseNode:
    """An snnlab IF/LIF/PLIF layer for a NIR ``IF`` or ``LIF`` node (hard reset), checked against dt."""
    v_th = uniform_value(node.v_threshold, "v_threshold", name)
    v_reset = uniform_value(node.v_reset, "v_reset", name)
    try:
        if isinstance(node, nir.IF):
            _check_unit_gain(node, name, dt, "")
            return IFNode(v_threshold=v_th, v_reset=v_reset, **options.kwargs())
        tau_s = _lif_steps(node, name, dt)
        decay_input = _lif_charge(node, name, tau_s, dt)
        v_leak = uniform_value(node.v_leak, "v_leak", name)
        if not _close(v_leak, v_reset) and not (v_leak == 0.0 == v_reset):
            raise ValueError(
                f"NIR node {name!r} (LIF): v_leak = {v_leak:.6g} differs from v_reset = {v_reset:.6g}; snnlab's LIF "
                f"leaks toward its reset potential (SEW ResNet eq. 5).")
        return _lif_module(node, tau_s, decay_input, dict(v_threshold=v_th, v_reset=v_reset), options)
    except (ValueError, TypeError) as error:
        if str(error).startswith("NIR node"):
            raise
        raise ValueError(f"NIR node {name!r} ({type(node).__name__}): {error}") from None


def _lif_module(node: nir.NIRNode, tau_s: float, decay_input: bool, reset: dict, options: NeuronOptions) -> BaseNode:
    meta = getattr(node, "metadata", None) or {}
    if meta.get("snnlab_neuron") == "PLIFNode" and tau_s > 1.0:
        plif = PLIFNode(init_tau=tau_s, decay_input=decay_input, **reset, **options.kwargs())
        w = meta.get("snnlab_plif_w")
        if w is not None and _close(1.0 / (1.0 + math.exp(-float(w))), 1.0 / tau_s):
            with torch.no_grad():  # the exported parameter itself: the same float32 1/tau, bit for bit
                plif.w.fill_(float(w))
        return plif
    return LIFNode(tau=tau_s, decay_input=decay_input, **reset, **options.kwargs())


def integrator_from_nir(node: nir.NIRNode, name: str, dt: float, backend: str = "auto") -> NonSpikingIntegrator:
    """A :class:`~snnlab.neurons.NonSpikingIntegrator` for a NIR ``LI`` (``R = τ/dt``, ``v_leak = 0``)
    or ``I`` (``R = 1/dt``) node."""
    if isinstance(node, nir.I):
        _check_unit_gain(node, name, dt, "")
        return NonSpikingIntegrator(1.0, step_mode="m", backend=backend)
    r = uniform_value(node.r, "r", name)
    tau_s = _lif_steps(node, name, dt)
    v_leak = uniform_value(node.v_leak, "v_leak", name)
    if v_leak != 0.0:
        raise ValueError(f"NIR node {name!r} (LI): v_leak = {v_leak:.6g}; snnlab's integrator leaks toward 0.")
    if not _close(r, tau_s):
        tau = uniform_value(node.tau, "tau", name)
        raise ValueError(
            f"NIR node {name!r} (LI): r = {r:.6g}, but snnlab's integrator (V = λV + X) needs r = tau/dt = "
            f"{tau_s:.6g} at dt = {dt:g} s. If it was written with r = tau/dt, its dt was tau/r = {tau / r:.6g} s.")
    return NonSpikingIntegrator(1.0 - 1.0 / tau_s, step_mode="m", backend=backend)


def soft_reset_neuron_from_nir(membrane: nir.NIRNode, threshold: nir.Threshold, scale: nir.Scale, names: tuple[str, str, str],
                               dt: float, options: NeuronOptions) -> BaseNode:
    """An snnlab soft-reset IF/LIF/PLIF for the NIR loop membrane (I or LI) -> Threshold -> Scale -> membrane
    (module docstring, 5); the feedback weight must be the soft reset's ``-(1-k) V_th / c``."""
    m_name, t_name, s_name = names
    v_th = uniform_value(threshold.threshold, "threshold", t_name)
    w = uniform_value(scale.scale, "scale", s_name)
    reset = dict(v_threshold=v_th, v_reset=None)
    if isinstance(membrane, nir.I):
        _check_unit_gain(membrane, m_name, dt, ", the membrane of a soft-reset IF")
        kind, k, decay_input = "if", 1.0, True
    else:
        tau_s = _lif_steps(membrane, m_name, dt)
        decay_input = _lif_charge(membrane, m_name, tau_s, dt)
        v_leak = uniform_value(membrane.v_leak, "v_leak", m_name)
        if v_leak != 0.0:
            raise ValueError(f"NIR node {m_name!r} (LI of a soft-reset LIF): v_leak = {v_leak:.6g}; a soft reset "
                             f"leaks toward 0.")
        kind, k = "lif", 1.0 / tau_s
    expected = soft_reset_weight(k, v_th, decay_input, kind)
    if not math.isclose(w, expected, rel_tol=1e-5, abs_tol=1e-12):
        raise ValueError(
            f"NIR nodes {m_name!r} -> {t_name!r} -> {s_name!r} form a loop whose feedback weight {w:.6g} is not a "
            f"soft reset's -(1-k)·V_th/c = {expected:.6g}: snnlab imports such a loop only as a soft-reset neuron.")
    if kind == "if":
        return IFNode(**reset, **options.kwargs())
    return _lif_module(membrane, tau_s, decay_input, reset, options)

