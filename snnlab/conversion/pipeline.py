"""ANN-to-SNN conversion (SC-TTFS paper, sections 2.2 and 3.4): train a ReLU ANN, replace every
ReLU by a spiking neuron (SC-TTFS, single-spike TTFS, or a rate-coded IF neuron as the third
baseline), fine-tune the thresholds and BN (Adam, lr 1e-5, cosine), fold BN (eq. 24), and run
the result either vectorised (each neuron layer maps its potentials to decoded outputs at once)
or step by step (:func:`simulate_stepwise`, actual spikes on a global clock).

**Latency accounting** (the layer-by-layer pipeline of Fig. 2(b)). The analog input charges the
first spiking layer at once; spiking layer ``l`` (``l = 1..H``) then *encodes* in window ``l``
(``T`` steps) while layer ``l+1`` *decodes* the same spikes (eq. 16), and the output layer, a
non-spiking integrator, finishes decoding at the end of window ``H``. A TTFS/SC-TTFS network
therefore answers after ``L = H * T`` steps (per-layer delay ``T``). A rate-coded network runs all
layers on the same clock and answers after its ``T`` steps.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from snnlab.checks import check_choice, check_in_range, check_positive, check_timesteps
from snnlab.conversion.bn_folding import has_batchnorm
from snnlab.conversion.ttfs import SCTTFSNeuron, ThresholdParams, TTFSNeuron, decode, spike_times

__all__ = [
    "PAPER_THRESHOLDS",
    "KINDS",
    "train_ann",
    "accuracy",
    "relu_preactivations",
    "thresholds_from_statistics",
    "rate_thresholds_from_statistics",
    "initial_thresholds",
    "calibration_rule",
    "RateNeuron",
    "ConvertedSNN",
    "convert",
    "evaluate_snn",
    "fine_tune",
    "simulate_stepwise",
]

PAPER_THRESHOLDS = {
    "cifar10": (ThresholdParams(2.0, -1.0, 0.8), ThresholdParams(1.0, 0.8, 1.0)),
    "cifar100": (ThresholdParams(4.5, -1.0, 0.9), ThresholdParams(2.0, -0.5, 1.0)),
}
"""SC-TTFS paper, Table 1: initial (encoding, calibration) thresholds per data set."""

KINDS = ("sc_ttfs", "ttfs", "rate")


def _as_tensors(data) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(data, Dataset):
        xs, ys = zip(*(data[i] for i in range(len(data))))
        return torch.stack(xs), torch.as_tensor(ys)
    x, y = data
    return x, torch.as_tensor(y)


def _loader(data, batch_size, shuffle, seed):
    dataset = data if isinstance(data, Dataset) else TensorDataset(*_as_tensors(data))
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)


def train_ann(model: nn.Module, train_data, *, epochs: int = 10, lr: float = 1e-2, batch_size: int = 64,
              weight_decay: float = 5e-4, seed: int = 0, resume_from: dict | None = None, on_epoch=None,
              progress: bool = False) -> list[dict]:
    """Train a ReLU ANN with Adam and a cosine schedule (per step) and cross-entropy; returns the
    per-epoch history (loss, train accuracy). ``train_data`` is a Dataset or ``(x, y)``; batches go
    to the model's device.

    Resumable: after every epoch ``on_epoch(state)`` receives the training state (epoch, history,
    optimiser, schedule, the loader's generator and every RNG state; the model's weights are the
    caller's to save); ``resume_from=state`` continues from it, ending with exactly the weights of
    an uninterrupted run on CPU."""
    check_timesteps("epochs", epochs)
    check_positive("lr", lr)
    torch.manual_seed(seed)
    model.train()
    history = _fit(model, list(model.parameters()), train_data, epochs=epochs, lr=lr, batch_size=batch_size,
                   weight_decay=weight_decay, seed=seed, resume_from=resume_from, on_epoch=on_epoch,
                   progress=progress, desc="ANN")
    model.eval()
    return history


def _device(model: nn.Module) -> torch.device:
    return next(iter(model.parameters()), torch.empty(0)).device


def _fit(model, params, train_data, *, epochs, lr, batch_size, weight_decay, seed, resume_from=None,
         on_epoch=None, progress=False, desc="fit") -> list[dict]:
    """Adam + cosine annealing (per step) + cross-entropy over ``params``; per-epoch history.
    ``resume_from`` / ``on_epoch``: see :func:`train_ann`."""
    from tqdm.auto import tqdm

    from snnlab.training.checkpoint import capture_rng_state, restore_rng_state

    loader = _loader(train_data, batch_size, True, seed)
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * len(loader))
    history, start = [], 0
    if resume_from is not None:
        opt.load_state_dict(resume_from["optimizer"])
        sched.load_state_dict(resume_from["scheduler"])
        loader.generator.set_state(resume_from["generator"])
        restore_rng_state(resume_from["rng"])
        history, start = list(resume_from["history"]), int(resume_from["epoch"])
    device = _device(model)
    for epoch in range(start, epochs):
        total, correct, loss_sum = 0, 0, 0.0
        # a bar fed by hand: wrapping the loader in tqdm would draw its shuffling seed a second time
        bar = tqdm(total=len(loader), desc=f"{desc} epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            out = model(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += len(y)
            correct += int((out.argmax(1) == y).sum())
            loss_sum += float(loss.detach()) * len(y)
            bar.update(1)
        bar.close()
        history.append({"epoch": epoch + 1, "loss": loss_sum / total, "train_accuracy": correct / total})
        if on_epoch is not None:
            on_epoch({"epoch": epoch + 1, "epochs": epochs, "history": list(history), "optimizer": opt.state_dict(),
                      "scheduler": sched.state_dict(), "generator": loader.generator.get_state(),
                      "rng": capture_rng_state()})
    return history


@torch.no_grad()
def accuracy(model: nn.Module, data, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on a Dataset or ``(x, y)``."""
    model.eval()
    x, y = _as_tensors(data)
    device = _device(model)
    correct = sum(int((model(x[i:i + batch_size].to(device)).argmax(1).cpu() == y[i:i + batch_size]).sum())
                  for i in range(0, len(y), batch_size))
    return correct / len(y)


@torch.no_grad()
def relu_preactivations(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The input of every ``nn.ReLU`` of ``model`` (in forward order) on the batch ``x``: the
    potentials the converted neurons will encode."""
    model.eval()
    captured: list[torch.Tensor] = []
    handles = [m.register_forward_hook(lambda mod, inp, out: captured.append(inp[0].detach().cpu().clone()))
               for m in model.modules() if isinstance(m, nn.ReLU)]
    if not handles:
        raise ValueError("the model has no nn.ReLU modules to convert.")
    try:
        model(x.to(_device(model)))
    finally:
        for h in handles:
            h.remove()
    return captured


def _positive_quantile(v: torch.Tensor, q: float) -> float:
    pos = v.reshape(-1)
    pos = pos[pos > 0].to(torch.float64)
    if pos.numel() == 0:
        return 1.0
    if pos.numel() > 1_000_000:
        pos = pos[torch.randperm(pos.numel(), generator=torch.Generator().manual_seed(0))[:1_000_000]]
    return float(torch.quantile(pos, q / 100.0))


def calibration_rule(encode: ThresholdParams) -> ThresholdParams:
    """Calibration threshold that halves the encoding step: same ``k``,
    ``theta_c(t) = theta_e(t) * (e^k - 1) / 2``. After an encoding spike at ``t_e > 0`` the
    residual lies in ``[0, theta_e(t_e) (e^k - 1))``, so a calibration spike at ``t_e`` marks the
    upper half of that interval and later ones split the lower half geometrically."""
    return ThresholdParams(encode.alpha * (math.exp(encode.k) - 1.0) / 2.0, encode.beta, encode.k)


def thresholds_from_statistics(preacts: Sequence[torch.Tensor], T: int, *, calibrate: bool = True,
                               percentile: float = 99.9, k_grid: Sequence[float] | None = None,
                               max_samples: int = 50_000):
    """Initial thresholds per layer from the ANN's activation statistics: ``theta_e(0)`` at the
    ``percentile`` of the positive pre-activations (robust normalisation, Rueckauer et al. 2017),
    ``beta = 0``, calibration by :func:`calibration_rule`, and the decay ``k`` picked from
    ``k_grid`` (default: 32 values from 0.02 to 4, geometric) to minimise the layer's mean conversion
    error ``|ReLU(v) - z|`` on (at most ``max_samples`` of) the sample.
    Returns a list of ``(encode, calibrate_or_None)``."""
    check_timesteps("T", T)
    from snnlab.conversion.errors import conversion_error_parts

    grid = np.geomspace(0.02, 4.0, 32) if k_grid is None else np.asarray(k_grid, dtype=np.float64)
    result = []
    for v in preacts:
        top = _positive_quantile(v, percentile)
        sample = v.reshape(-1)
        if sample.numel() > max_samples:
            sample = sample[torch.randperm(sample.numel(), generator=torch.Generator().manual_seed(0))[:max_samples]]
        best = None
        for k in grid:
            enc = ThresholdParams(top, 0.0, float(k))
            cal = calibration_rule(enc) if calibrate else None
            err = conversion_error_parts(sample, T, enc, cal)["total"]
            if best is None or err < best[0]:
                best = (err, enc, cal)
        result.append(best[1:])
    return result


def rate_thresholds_from_statistics(preacts: Sequence[torch.Tensor], percentile: float = 99.9) -> list[float]:
    """Rate-coded baseline: each layer's threshold at the ``percentile`` of its positive
    activations (Rueckauer et al. 2017's robust normalisation)."""
    return [_positive_quantile(v, percentile) for v in preacts]


def initial_thresholds(kind: str, preacts: Sequence[torch.Tensor], T: int, *, percentile: float = 99.9,
                       max_samples: int = 50_000) -> list:
    """The initial thresholds of a ``kind`` conversion from the ANN's pre-activations ``preacts``
    (:func:`relu_preactivations`), as chapter 6 and ``snnlab convert`` set them: for ``"rate"``
    :func:`rate_thresholds_from_statistics`, for ``"ttfs"`` / ``"sc_ttfs"``
    :func:`thresholds_from_statistics` (with calibration thresholds for SC-TTFS only). Pass the
    result to :func:`convert`."""
    check_choice("kind", kind, KINDS)
    check_in_range("percentile", percentile, 0.0, 100.0, low_open=True)
    if kind == "rate":
        return rate_thresholds_from_statistics(preacts, percentile)
    return thresholds_from_statistics(preacts, T, calibrate=kind == "sc_ttfs", percentile=percentile,
                                      max_samples=max_samples)


class RateNeuron(nn.Module):
    """Integrate-and-fire neuron with reset by subtraction for rate-coded conversion (Rueckauer
    et al. 2017): input ``[T*B, ...]`` (time folded into the batch), output ``threshold *
    spikes``, so the time average of the output approximates ``clip(ReLU(x), 0, threshold)``."""

    def __init__(self, T: int, threshold: float) -> None:
        super().__init__()
        self.T = check_timesteps("T", T)
        self.threshold = check_positive("threshold", threshold)
        self.last_spikes: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] % self.T:
            raise ValueError(f"RateNeuron expects time folded into the batch ([T*B, ...] with T={self.T}), "
                             f"got leading size {x.shape[0]}.")
        seq = x.reshape(self.T, -1, *x.shape[1:])
        v = torch.zeros_like(seq[0])
        out = torch.empty_like(seq)
        for t in range(self.T):
            v = v + seq[t]
            s = (v >= self.threshold).to(x.dtype)
            v = v - self.threshold * s
            out[t] = s
        self.last_spikes = out.reshape(self.T, out.shape[1], -1).sum((0, 2)).to(torch.int64)
        return (out * self.threshold).reshape(x.shape)

    def extra_repr(self) -> str:
        return f"T={self.T}, threshold={self.threshold:.4g}"


class ConvertedSNN(nn.Module):
    """A converted network: the ANN with each ReLU replaced by a spiking neuron layer.

    ``forward(x)`` returns the output layer's accumulated potential (the logits) for a static
    input batch; afterwards ``last_spikes_per_image`` holds the spikes each image caused (all
    layers). ``latency`` is the number of timesteps until the answer (module docstring)."""

    def __init__(self, net: nn.Module, kind: str, T: int) -> None:
        super().__init__()
        self.net, self.kind, self.T = net, check_choice("kind", kind, KINDS), T
        self.last_spikes_per_image: torch.Tensor | None = None

    @property
    def neurons(self) -> list[nn.Module]:
        return [m for m in self.net.modules() if isinstance(m, (SCTTFSNeuron, RateNeuron))]

    @property
    def latency(self) -> int:
        return self.T if self.kind == "rate" else len(self.neurons) * self.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "rate":
            B = x.shape[0]
            xs = x.unsqueeze(0).expand(self.T, *x.shape).reshape(self.T * B, *x.shape[1:])
            out = self.net(xs).reshape(self.T, B, -1).mean(0)
        else:
            out = self.net(x)
        self.last_spikes_per_image = sum(n.last_spikes for n in self.neurons)
        return out


def _replace_relus(module: nn.Module, make) -> int:
    count = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.ReLU):
            setattr(module, name, make())
            count += 1
        else:
            count += _replace_relus(child, make)
    return count


def convert(ann: nn.Module, kind: str = "sc_ttfs", *, T: int, thresholds=None, backend: str = "auto") -> ConvertedSNN:
    """Replace every ``nn.ReLU`` of (a copy of) ``ann`` by a spiking neuron layer.

    ``kind``: ``"sc_ttfs"``, ``"ttfs"`` (single spike) or ``"rate"``. ``thresholds``: for TTFS
    kinds a list with one ``(encode, calibrate)`` pair per ReLU (e.g. from
    :func:`thresholds_from_statistics`), or a key of :data:`PAPER_THRESHOLDS` (the paper's Table 1,
    the same for every layer); for ``"rate"`` a list of per-layer thresholds. BN layers are kept
    (fine-tune them, then :func:`fold_batchnorm`); the network is put in eval mode."""
    check_choice("kind", kind, KINDS)
    check_timesteps("T", T)
    net = copy.deepcopy(ann).eval()
    n_relu = sum(isinstance(m, nn.ReLU) for m in net.modules())
    if n_relu == 0:
        raise ValueError("the ANN has no nn.ReLU modules to convert (use nn.ReLU modules, not F.relu).")
    if thresholds is None:
        raise ValueError("give thresholds: a list per ReLU layer, or a PAPER_THRESHOLDS key "
                         f"({', '.join(PAPER_THRESHOLDS)}) for TTFS kinds.")
    if isinstance(thresholds, str):
        if kind == "rate":
            raise ValueError("the paper's Table 1 thresholds are for TTFS neurons; the rate baseline "
                             "takes one threshold per layer.")
        enc, cal = PAPER_THRESHOLDS[check_choice("thresholds preset", thresholds, PAPER_THRESHOLDS)]
        thresholds = [(enc, cal)] * n_relu
    thresholds = list(thresholds)
    if len(thresholds) != n_relu:
        raise ValueError(f"got {len(thresholds)} thresholds for {n_relu} ReLU layers; give one per layer.")
    it = iter(thresholds)

    def make():
        item = next(it)
        if kind == "rate":
            return RateNeuron(T, float(item))
        enc, cal = item if isinstance(item, tuple) and len(item) == 2 else (item, None)
        if kind == "ttfs":
            return TTFSNeuron(T, enc, backend=backend)
        if cal is None:
            raise ValueError("SC-TTFS needs (encode, calibrate) thresholds for every layer.")
        return SCTTFSNeuron(T, enc, cal, backend=backend)

    _replace_relus(net, make)
    return ConvertedSNN(net, kind, T)


@torch.no_grad()
def evaluate_snn(snn: ConvertedSNN, data, batch_size: int = 256) -> dict[str, float]:
    """Accuracy, mean spikes per image and latency (timesteps) of a converted network."""
    snn.eval()
    x, y = _as_tensors(data)
    device = _device(snn)
    correct, spikes = 0, 0
    for i in range(0, len(y), batch_size):
        out = snn(x[i:i + batch_size].to(device))
        correct += int((out.argmax(1).cpu() == y[i:i + batch_size]).sum())
        spikes += int(snn.last_spikes_per_image.sum())
    return {"accuracy": correct / len(y), "spikes_per_image": spikes / len(y), "latency": snn.latency}


def fine_tune(snn: ConvertedSNN, train_data, *, epochs: int = 1, lr: float = 1e-5, batch_size: int = 128,
              train_bn: bool = True, seed: int = 0, resume_from: dict | None = None, on_epoch=None,
              progress: bool = False) -> list[dict]:
    """Fine-tune the neurons' thresholds (alpha, beta, k; eqs. 21-23) and the BN affine
    parameters with Adam and cosine annealing (SC-TTFS section 4.1: lr 1e-5, batch 128, 100
    epochs on CIFAR), cross-entropy on the output potentials (eq. 20, natural log). BN keeps its
    running statistics (eval mode); every other weight is frozen. Returns per-epoch history.
    Resumable through ``on_epoch`` / ``resume_from`` as :func:`train_ann`."""
    if snn.kind == "rate":
        raise ValueError("the rate baseline has no trainable thresholds; fine-tune a TTFS or SC-TTFS network.")
    check_timesteps("epochs", epochs)
    check_positive("lr", lr)
    torch.manual_seed(seed)
    params = [p for n in snn.neurons for p in n.parameters()]
    if train_bn:
        params += [p for m in snn.net.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))
                   for p in m.parameters()]
    frozen = {id(p) for p in params}
    for p in snn.parameters():
        p.requires_grad_(id(p) in frozen)
    snn.eval()  # BN uses running statistics; neurons have no train/eval difference
    try:
        return _fit(snn, params, train_data, epochs=epochs, lr=lr, batch_size=batch_size, weight_decay=0.0, seed=seed,
                    resume_from=resume_from, on_epoch=on_epoch, progress=progress, desc=f"fine-tune {snn.kind}")
    finally:
        for p in snn.parameters():
            p.requires_grad_(True)


_LINEAR_OPS = (nn.Conv2d, nn.Linear, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Identity, nn.Dropout)


def _flat_layers(module: nn.Module) -> list[nn.Module]:
    if isinstance(module, nn.Sequential):
        return [leaf for child in module for leaf in _flat_layers(child)]
    if isinstance(module, (SCTTFSNeuron,) + _LINEAR_OPS):
        return [module]
    raise ValueError(f"simulate_stepwise runs sequential networks of {', '.join(t.__name__ for t in _LINEAR_OPS)} "
                     f"and TTFS/SC-TTFS neurons; found {type(module).__name__} (residual blocks need "
                     f"a delay line for the shortcut and are run by the vectorised path only).")


def _apply(ops, z, with_bias):
    for op in ops:
        if isinstance(op, nn.Linear):
            z = F.linear(z, op.weight, op.bias if with_bias else None)
        elif isinstance(op, nn.Conv2d):
            z = F.conv2d(z, op.weight, op.bias if with_bias else None, op.stride, op.padding, op.dilation, op.groups)
        else:
            z = op(z)
    return z


@torch.no_grad()
def simulate_stepwise(snn: ConvertedSNN, x: torch.Tensor) -> dict[str, object]:
    """Run a converted TTFS/SC-TTFS network on a global clock, one timestep at a time, with
    actual spikes: spiking layer ``l`` encodes in window ``l`` by comparing its potential with its
    thresholds at every step (eqs. 9-13, no closed form), the next layer accumulates ``W *
    theta(t)`` for each spike as it arrives (eq. 16; biases are added once, at the first step of
    the window). Needs BN folded (:func:`fold_batchnorm`). Returns the logits, spikes per image,
    the latency in steps and the number of steps actually simulated."""
    if snn.kind == "rate":
        raise ValueError("simulate_stepwise runs TTFS/SC-TTFS networks; the rate baseline is stepwise already.")
    if has_batchnorm(snn.net):
        raise ValueError("fold the BN layers first (snnlab.conversion.fold_batchnorm): a spiking layer "
                         "has weights and a bias, no normalisation.")
    layers = _flat_layers(snn.net)
    stages, ops = [], []
    for layer in layers:
        if isinstance(layer, SCTTFSNeuron):
            stages.append((ops, layer))
            ops = []
        else:
            ops.append(layer)
    readout = ops
    T = snn.T
    # the analog input charges the first spiking layer at once (window 0)
    v = _apply(stages[0][0], x, True)
    spikes = torch.zeros(x.shape[0], dtype=torch.int64)
    steps = 0
    for index, (_, neuron) in enumerate(stages):
        enc = neuron.thresholds()[0]
        cal = neuron.thresholds()[1]
        next_ops = stages[index + 1][0] if index + 1 < len(stages) else readout
        residual = v.clone()
        fired_e = torch.zeros_like(v, dtype=torch.bool)
        fired_c = torch.zeros_like(v, dtype=torch.bool)
        v_next = None
        for t in range(T):  # window index+1 of the global clock
            steps += 1
            th_e = float(enc(t))
            new_e = ~fired_e & (residual >= th_e)
            residual = torch.where(new_e, residual - th_e, residual)
            fired_e |= new_e
            z = new_e.to(v.dtype) * th_e
            if cal is not None:
                th_c = float(cal(t))
                new_c = fired_e & ~fired_c & (residual >= th_c)
                residual = torch.where(new_c, torch.zeros_like(residual), residual)
                fired_c |= new_c
                z = z + new_c.to(v.dtype) * th_c
                spikes += new_c.reshape(len(x), -1).sum(1)
            spikes += new_e.reshape(len(x), -1).sum(1)
            contribution = _apply(next_ops, z, t == 0)
            v_next = contribution if v_next is None else v_next + contribution
        v = v_next
    return {"logits": v, "spikes_per_image": spikes, "latency": snn.latency, "steps": steps}
