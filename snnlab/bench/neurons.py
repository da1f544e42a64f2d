"""Neuron kernels against SpikingJelly, snnTorch and Norse on CPU: one LIF layer, and Linear + LIF.

Three workloads, every library running the same neuron (see :data:`DYNAMICS`):

* (a) one LIF layer, T = 8 steps, N = 2^20 neurons: forward (inference, no graph) and
  forward + backward (training: the graph is built, then ``out.backward(g)`` with a fixed ``g``);
* (b) the Open Neuromorphic SNN-library benchmark brought to CPU: ``Linear(n, n)`` then LIF,
  batch 16, T = 500, n in {512, 1024, 2048}: forward time, backward time, the bytes autograd keeps
  for the backward and the peak resident memory of one forward + backward (in a fresh process).
  Every library gets the same Linear applied to the whole ``[T, B, n]`` sequence at once (one
  matrix product, identical for all), so the difference is the neuron; the Linear alone is timed
  too (``linear_only``), to show how much of each phase every library shares;
* (c) snnlab alone: the LIF forward + backward at growing sizes on one thread and on the whole
  thread team, to find where the team starts to pay (:data:`snnlab.cpu_threads.PARALLEL_MIN_WORK`).

Baselines, measured in the same run: snnlab's own pure-torch path (``backend="torch"``),
SpikingJelly, snnTorch and Norse when installed (``pip install -e ".[bench]"``; a missing one is
reported as skipped, with the reason), and a roofline: the time to copy, with torch's parallel
copy, as many bytes as the kernels must read and write (workload a). Ratios are
``baseline time / snnlab time`` (above 1: snnlab is faster) and ``snnlab time / roofline time``.
Times are the minimum over ``--repeats`` runs after ``--warmup`` runs (the median is reported
too). ``--order blocks`` (default) runs each library's repeats back to back, the steady state of a
loop that runs one library only, as a user runs it; ``--order rounds`` times the libraries (and the
roofline copy) in turn, round after round, so a change in the machine's load reaches all of them
alike (for a busy machine). The two
differ on the development machine, for reasons measured there (workload a, page faults counted
with getrusage): in rounds, the baselines' fresh tensors reuse heap memory the other libraries
just freed (SpikingJelly: 0-25k page faults per call instead of about 30k in blocks, 34-38 ms
instead of 66-75 ms), while snnlab (no page faults in either order: its buffers are pooled) no
longer finds its 32 MB buffers in the L3 cache (6.3-7.3 ms in blocks, 9.8-10.5 ms in rounds).
Neither order is the whole truth for one layer; workload b, where a Linear runs between the
neuron calls, is the closer model of a network. Report both. The load average at the
start and the end is recorded, as other work skews absolute times.

``--allocator reuse`` sets glibc's ``M_MMAP_THRESHOLD`` / ``M_TRIM_THRESHOLD`` (for every library
in the run) so freed large tensors are reused instead of returned to the kernel: with the default
allocator a fresh ``[T, N]`` tensor of 32 MB is mapped anew on every call and the page faults of its
first touch can cost more than the kernel that writes it. The JSON says which allocator was used.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib.metadata
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

__all__ = ["DYNAMICS", "LIBRARIES", "add_arguments", "run", "build_neuron", "peak_rss_of_training_step"]

DYNAMICS = {
    "equations": "H[t] = V[t-1] - V[t-1]/tau + X[t]; S[t] = Θ(H[t] - V_th); V[t] = H[t]·(1 - S[t]) + V_reset·S[t]",
    "tau": 2.0,
    "decay": 0.5,
    "decay_input": False,
    "v_threshold": 1.0,
    "v_reset": 0.0,
    "detach_reset": True,
    "surrogate": "ArcTan, alpha = 2 (SEW ResNet)",
    "source": "LIF of OTTT eq. (2) with a hard reset; snnTorch's Leaky(reset_mechanism='zero')",
}

MAPPINGS = {
    "snnlab": "snnlab.neurons.LIFNode(tau=2, decay_input=False, v_reset=0, detach_reset=True, "
    "surrogate=ArcTan(2), step_mode='m'): Numba kernels, one call per sequence.",
    "snnlab-torch": "the same LIFNode with backend='torch': snnlab's pure-torch reference, a Python "
    "loop over T.",
    "spikingjelly": "spikingjelly.activation_based.neuron.LIFNode(tau=2., decay_input=False, v_threshold=1., "
    "v_reset=0., surrogate_function=surrogate.ATan(alpha=2.), detach_reset=True, step_mode='m'): "
    "its CPU multi-step path (a torch loop with a hand-written backward). Same dynamics and surrogate.",
    "snntorch": "snntorch.Leaky(beta=0.5, threshold=1., spike_grad=surrogate.atan(alpha=2.), "
    "reset_mechanism='zero') called once per step in a Python loop (its usual use): U[t] = "
    "beta·(1 - S[t-1])·U[t-1] + X[t], reset detached: the same dynamics and surrogate (it fires on "
    "U > V_th, snnlab on U >= V_th; equal on continuous input).",
    "norse": "norse.torch.LIFBoxCell (a LIF without synaptic current) in a Python loop, with "
    "dt·tau_mem_inv = 0.5, v_leak = v_reset = 0, v_th = 1 and the input scaled by 2 (Norse decays "
    "the input: v + 0.5·(2x - v) = 0.5·v + x; the scaling is timed). Differences: Norse's reset is "
    "not detached (its backward carries the reset term) and it has no ArcTan surrogate: SuperSpike "
    "(method='super', alpha=2) is used, which costs the same kind of arithmetic.",
}

LIBRARIES = ("snnlab", "snnlab-torch", "spikingjelly", "snntorch", "norse")
_PACKAGES = {"spikingjelly": "spikingjelly", "snntorch": "snntorch", "norse": "norse"}


# ------------------------------------------------------------------------------------------------
# the neuron of each library
# ------------------------------------------------------------------------------------------------


def _availability(lib: str) -> dict:
    if lib in ("snnlab", "snnlab-torch"):
        return {"available": True, "version": importlib.metadata.version("snnlab")}
    try:
        version = importlib.metadata.version(_PACKAGES[lib])
        importlib.import_module(_PACKAGES[lib])
    except Exception as exc:  # not installed, or broken: report why, skip it
        return {
            "available": False,
            "reason": f"{type(exc).__name__}: {exc}. Install the benchmark extra: pip install -e \".[bench]\"",
        }
    return {"available": True, "version": version}


def _from_fresh_state(module: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x_seq -> module(x_seq)`` after ``module.reset()`` (a multi-step neuron with a reset method)."""

    def run(x: torch.Tensor) -> torch.Tensor:
        module.reset()
        return module(x)

    return run


def build_neuron(lib: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function ``x_seq [T, ...] -> spikes [T, ...]`` running ``lib``'s LIF from a fresh state."""
    if lib in ("snnlab", "snnlab-torch"):
        from snnlab.neurons import LIFNode
        from snnlab.surrogate import ArcTan

        node = LIFNode(
            tau=2.0, decay_input=False, v_threshold=1.0, v_reset=0.0, detach_reset=True,
            surrogate=ArcTan(2.0), step_mode="m", backend="auto" if lib == "snnlab" else "torch",
        )

        return _from_fresh_state(node)
    if lib == "spikingjelly":
        from spikingjelly.activation_based import neuron, surrogate

        sj = neuron.LIFNode(
            tau=2.0, decay_input=False, v_threshold=1.0, v_reset=0.0,
            surrogate_function=surrogate.ATan(alpha=2.0), detach_reset=True, step_mode="m",
        )

        return _from_fresh_state(sj)
    if lib == "snntorch":
        import snntorch
        from snntorch import surrogate as snn_surrogate

        leaky = snntorch.Leaky(
            beta=0.5, threshold=1.0, spike_grad=snn_surrogate.atan(alpha=2.0), reset_mechanism="zero"
        )

        def run(x: torch.Tensor) -> torch.Tensor:
            mem = torch.zeros_like(x[0])
            spikes = []
            for t in range(x.shape[0]):
                spk, mem = leaky(x[t], mem)
                spikes.append(spk)
            return torch.stack(spikes)

        return run
    if lib == "norse":
        from norse.torch import LIFBoxCell, LIFBoxParameters

        dt = 1e-3
        params = LIFBoxParameters(
            tau_mem_inv=torch.as_tensor(0.5 / dt), v_leak=torch.as_tensor(0.0), v_th=torch.as_tensor(1.0),
            v_reset=torch.as_tensor(0.0), method="super", alpha=torch.as_tensor(2.0),
        )
        cell = LIFBoxCell(params, dt=dt)

        def run(x: torch.Tensor) -> torch.Tensor:
            x2 = x * 2.0
            state = None
            spikes = []
            for t in range(x2.shape[0]):
                z, state = cell(x2[t], state)
                spikes.append(z)
            return torch.stack(spikes)

        return run
    raise ValueError(f"unknown library {lib!r}; valid: {', '.join(LIBRARIES)}.")


# ------------------------------------------------------------------------------------------------
# measuring
# ------------------------------------------------------------------------------------------------


ORDERS = ("rounds", "blocks")


def _schedule(keys, warmup: int, repeats: int, order: str):
    """The calls of a measurement as ``(key, timed)`` pairs. ``"rounds"``: every key in turn, round
    after round, so a change in the machine's load reaches all of them alike. ``"blocks"``: each
    key's warm-up and repeats back to back, the steady state of a loop that runs one library only
    (its own buffers and caches warm, nobody else's memory in between)."""
    keys = list(keys)
    if order == "rounds":
        return [(k, r >= warmup) for r in range(warmup + repeats) for k in keys]
    return [(k, r >= warmup) for k in keys for r in range(warmup + repeats)]


def _timed_calls(fns: dict[str, Callable[[], object]], warmup: int, repeats: int,
                 order: str = "blocks") -> dict[str, dict]:
    """Time the functions of ``fns`` in the order of :func:`_schedule`; per function: min and
    median over ``repeats``."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for name, timed in _schedule(fns, warmup, repeats, order):
        gc.collect()
        t0 = time.perf_counter()
        fns[name]()
        elapsed = time.perf_counter() - t0
        if timed:
            times[name].append(elapsed)
    return {name: {"min_s": min(ts), "median_s": statistics.median(ts), "repeats": repeats}
            for name, ts in times.items()}


def _copy(n_bytes: int) -> tuple[Callable[[], object], int]:
    """Torch's (parallel) copy of ``n_bytes / 2`` bytes, which reads and writes ``n_bytes`` in all;
    returns the copy and the bytes it moves."""
    numel = max(1, n_bytes // 8)
    src = torch.ones(numel)
    dst = torch.empty(numel)
    return (lambda: dst.copy_(src)), 8 * numel


def _saved_bytes(fn: Callable[[], object]) -> int:
    """Bytes of the distinct storages autograd keeps for the backward while ``fn`` builds its graph."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    del out
    return sum(storages.values())


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _use_reuse_allocator() -> bool:
    """glibc: serve large blocks from the heap and keep freed memory (M_MMAP_THRESHOLD=-3, M_TRIM_THRESHOLD=-1)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(-3, 1 << 30)) and bool(libc.mallopt(-1, (1 << 31) - 1))


def _ratio(baseline: float | None, ours: float | None) -> float | None:
    if baseline is None or ours is None or ours <= 0:
        return None
    return baseline / ours


def _spike_agreement(libs: list[str], steps: int, neurons: int) -> dict:
    """Fraction of spikes equal to snnlab's on a check input (the mappings are the same dynamics)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(steps, neurons, generator=g) * 0.7 + 0.6
    with torch.no_grad():
        ref = build_neuron("snnlab")(x)
        out = {}
        for lib in libs:
            if lib != "snnlab":
                out[lib] = float((build_neuron(lib)(x) == ref).float().mean())
    return out


def _workload_a(args: argparse.Namespace, libs: list[str]) -> dict:
    T, N = args.a_steps, args.a_neurons
    g = torch.Generator().manual_seed(0)
    x = torch.randn(T, N, generator=g) * 0.7 + 0.6
    grad = torch.randn(T, N, generator=g)
    # bytes the kernels must move: forward reads X, writes S (inference keeps nothing); training's
    # forward also writes H, its backward reads dL/dS and H and writes dL/dX (state vectors: N each)
    copies = {"forward": _copy(8 * T * N + 8 * N), "forward_backward": _copy(24 * T * N + 16 * N)}
    fns: dict[str, dict[str, Callable[[], object]]] = {"forward": {}, "forward_backward": {}}
    rates: dict[str, float] = {}
    xr = x.clone().requires_grad_()
    for lib in libs:
        neuron = build_neuron(lib)
        with torch.no_grad():
            rates[lib] = float(neuron(x).mean())

        def forward(neuron=neuron) -> None:
            with torch.no_grad():
                neuron(x)

        def forward_backward(neuron=neuron) -> None:
            xr.grad = None
            neuron(xr).backward(grad)

        fns["forward"][lib] = forward
        fns["forward_backward"][lib] = forward_backward
    results: dict[str, dict] = {lib: {"firing_rate": rates[lib]} for lib in libs}
    roofline: dict[str, dict] = {}
    for phase, (copy, moved) in copies.items():
        timed = _timed_calls({**fns[phase], "roofline": copy}, args.warmup, args.repeats, args.order)
        roofline[phase] = {**timed.pop("roofline"), "bytes_read_and_written": moved}
        for lib, timing in timed.items():
            results[lib][phase] = timing
    roofline["note"] = (
        "time of torch's parallel copy of the bytes the kernels read and write, timed in the same "
        "rounds as the libraries: forward 8 bytes per neuron-step (read X, write S), forward + backward "
        "24 (also write H; read dL/dS and H, write dL/dX)"
    )
    ours = results.get("snnlab")
    ratios: dict[str, dict] = {}
    for phase in ("forward", "forward_backward"):
        t_ours = ours[phase]["min_s"] if ours else None
        ratios[phase] = {
            f"{lib}_over_snnlab": _ratio(results[lib][phase]["min_s"], t_ours) for lib in libs if lib != "snnlab"
        }
        ratios[phase]["snnlab_over_roofline"] = _ratio(t_ours, roofline[phase]["min_s"])
    return {"steps": T, "neurons": N, "results": results, "roofline": roofline, "ratios": ratios}


def _linear_lif(lib: str, n: int, seed: int = 0):
    torch.manual_seed(seed)
    linear = torch.nn.Linear(n, n)
    neuron = build_neuron(lib)
    return linear, (lambda x: neuron(linear(x)))


def _b_inputs(T: int, B: int, n: int):
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(T, B, n, generator=g) < 0.3).float()
    grad = torch.randn(T, B, n, generator=g)
    return x, grad


def _workload_b(args: argparse.Namespace, libs: list[str]) -> dict:
    T, B = args.b_steps, args.b_batch
    per_n: dict[str, dict] = {}
    for n in args.b_sizes:
        x, grad = _b_inputs(T, B, n)
        models = {lib: _linear_lif(lib, n) for lib in libs}
        # the Linear alone (the same for every library): how much of each step is not the neuron
        shared = torch.nn.Linear(n, n)
        models["linear_only"] = (shared, shared)
        times: dict[str, dict[str, list[float]]] = {k: {"forward": [], "backward": []} for k in models}
        for key, timed in _schedule(models, args.warmup, args.repeats, args.order):
            linear, model = models[key]
            linear.zero_grad(set_to_none=True)
            gc.collect()
            t0 = time.perf_counter()
            out = model(x)
            t1 = time.perf_counter()
            out.backward(grad)
            t2 = time.perf_counter()
            del out
            if timed:
                times[key]["forward"].append(t1 - t0)
                times[key]["backward"].append(t2 - t1)
        results: dict[str, dict] = {}
        for key, (linear, model) in models.items():
            fwd, bwd = times[key]["forward"], times[key]["backward"]
            tot = [a + b for a, b in zip(fwd, bwd)]
            entry = {
                phase: {"min_s": min(ts), "median_s": statistics.median(ts)}
                for phase, ts in (("forward", fwd), ("backward", bwd), ("forward_backward", tot))
            }
            entry["repeats"] = args.repeats
            if key == "linear_only":
                linear_only = entry
                continue
            with torch.no_grad():
                entry["firing_rate"] = float(model(x).mean())
            entry["saved_for_backward_bytes"] = _saved_bytes(lambda: model(x))
            if args.peak_memory:
                entry["peak_rss_increase_bytes"] = peak_rss_of_training_step(key, n, T, B, args.allocator)
            results[key] = entry
        del models, shared
        gc.collect()
        ours = results.get("snnlab")
        ratios = {}
        for phase in ("forward", "backward", "forward_backward"):
            t_ours = ours[phase]["min_s"] if ours else None
            ratios[phase] = {
                f"{lib}_over_snnlab": _ratio(results[lib][phase]["min_s"], t_ours) for lib in libs if lib != "snnlab"
            }
        for key in ("saved_for_backward_bytes", "peak_rss_increase_bytes"):
            if ours and key in ours:
                ratios[key] = {f"{lib}_over_snnlab": _ratio(results[lib][key], ours[key]) for lib in libs if lib != "snnlab"}
        per_n[str(n)] = {"results": results, "ratios": ratios, "linear_only": linear_only}
    return {"steps": T, "batch": B, "sizes": list(args.b_sizes), "by_n": per_n}


def _workload_c(args: argparse.Namespace) -> dict:
    """(c) Where the thread team starts to pay: snnlab's LIF forward + backward over T = 8 steps at
    growing sizes, on one thread and on the whole team, timed in turn. The smallest size at which
    the team is faster is what :data:`snnlab.cpu_threads.PARALLEL_MIN_WORK` should be near."""
    from snnlab import cpu_threads

    T = 8
    neuron = build_neuron("snnlab")
    g = torch.Generator().manual_seed(3)
    rows = []
    for work in args.c_sizes:
        x = (torch.randn(T, max(1, work // T), generator=g) * 0.7 + 0.6).requires_grad_()
        grad = torch.randn(x.shape, generator=g)

        def step(limit: int) -> Callable[[], None]:
            def run() -> None:
                with cpu_threads.parallel_min_work(limit):
                    x.grad = None
                    neuron(x).backward(grad)
            return run

        timed = _timed_calls({"one_thread": step(1 << 62), "team": step(0)}, args.warmup, args.repeats, "rounds")
        rows.append({
            "neuron_steps": int(x.numel()),
            "one_thread": timed["one_thread"],
            "team": timed["team"],
            "team_speedup": _ratio(timed["one_thread"]["min_s"], timed["team"]["min_s"]),
        })
    faster = [r["neuron_steps"] for r in rows if (r["team_speedup"] or 0) > 1.0]
    return {
        "steps": T,
        "team_threads": cpu_threads.kernel_thread_count(1 << 62),
        "rows": rows,
        "smallest_size_where_team_is_faster": min(faster) if faster else None,
        "parallel_min_work_in_use": cpu_threads.PARALLEL_MIN_WORK,
    }


def peak_rss_of_training_step(lib: str, n: int, T: int, B: int, allocator: str = "default") -> int | None:
    """Peak resident memory added by one forward + backward of Linear(n, n) + ``lib``'s LIF, in bytes.

    Measured in a fresh Python process (the peak RSS of a process only grows): after the model,
    the input and a small warm-up call are in place, RSS is read; then one training step runs and
    the process's peak RSS minus that reading is the answer. None if the child fails.
    """
    cmd = [sys.executable, "-m", "snnlab.bench.neurons", "--peak-rss-child", lib, str(n), str(T), str(B), allocator]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
        return int(json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_increase_bytes"])
    except (subprocess.SubprocessError, ValueError, KeyError, IndexError):
        return None


def _peak_rss_child(lib: str, n: int, T: int, B: int, allocator: str) -> None:
    if allocator == "reuse":
        _use_reuse_allocator()
    linear, model = _linear_lif(lib, n)
    small = torch.rand(2, 2, n)
    model(small).sum().backward()  # imports, compiled-kernel load, lazy initialisation
    x, grad = _b_inputs(T, B, n)
    linear.zero_grad(set_to_none=True)
    gc.collect()
    before = _rss_bytes()
    model(x).backward(grad)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"peak_rss_increase_bytes": max(0, peak - before)}))


# ------------------------------------------------------------------------------------------------
# the command
# ------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds): checks the JSON, not the speed")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (default 7; quick 1)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed runs first (default 2; quick 1)")
    parser.add_argument("--workloads", default="a,b,c",
                        help="comma-separated: a, b, c (thread-team crossover); default all three")
    parser.add_argument("--libraries", default=",".join(LIBRARIES), help=f"comma-separated subset of {', '.join(LIBRARIES)}")
    parser.add_argument("--a-neurons", type=int, default=None, help="workload a: neurons (default 2^20)")
    parser.add_argument("--a-steps", type=int, default=None, help="workload a: timesteps (default 8)")
    parser.add_argument("--b-sizes", default=None, help="workload b: comma-separated n (default 512,1024,2048)")
    parser.add_argument("--b-steps", type=int, default=None, help="workload b: timesteps (default 500)")
    parser.add_argument("--b-batch", type=int, default=None, help="workload b: batch size (default 16)")
    parser.add_argument("--c-sizes", default=None,
                        help="workload c: comma-separated neuron-step counts (default 2^12..2^22 in steps of 4x)")
    parser.add_argument("--order", choices=ORDERS, default="blocks",
                        help="'blocks' (default): each library's runs back to back, its steady state; "
                        "'rounds': the libraries in turn, round after round (load drift reaches all alike, "
                        "but each call finds the others' memory in the heap and caches)")
    parser.add_argument("--allocator", choices=("default", "reuse"), default="default",
                        help="'reuse' keeps freed large blocks in glibc's heap (no page faults on reuse)")
    parser.add_argument("--peak-memory", dest="peak_memory", action="store_true", default=None,
                        help="measure peak RSS per library in a fresh process (default on; off in quick mode)")
    parser.add_argument("--no-peak-memory", dest="peak_memory", action="store_false")


def _resolve(args: argparse.Namespace) -> argparse.Namespace:
    quick = bool(getattr(args, "quick", False))

    def pick(name: str, full, small):
        value = getattr(args, name, None)
        return (small if quick else full) if value is None else value

    out = argparse.Namespace(**vars(args))
    out.quick = quick
    out.repeats = pick("repeats", 7, 1)
    out.warmup = pick("warmup", 2, 1)
    out.a_neurons = pick("a_neurons", 1 << 20, 1 << 12)
    out.a_steps = pick("a_steps", 8, 4)
    sizes = pick("b_sizes", "512,1024,2048", "16")
    out.b_sizes = [int(s) for s in str(sizes).split(",") if s.strip()]
    out.b_steps = pick("b_steps", 500, 8)
    c_sizes = pick("c_sizes", ",".join(str(1 << k) for k in range(12, 23, 2)), "4096,65536")
    out.c_sizes = [int(s) for s in str(c_sizes).split(",") if s.strip()]
    out.b_batch = pick("b_batch", 16, 2)
    out.peak_memory = pick("peak_memory", True, False)
    out.workloads = [w.strip() for w in str(getattr(args, "workloads", "a,b,c")).split(",") if w.strip()]
    out.libraries = [lib.strip() for lib in str(getattr(args, "libraries", ",".join(LIBRARIES))).split(",") if lib.strip()]
    out.allocator = getattr(args, "allocator", "default")
    out.order = getattr(args, "order", "blocks")
    if out.order not in ORDERS:
        raise ValueError(f"unknown --order {out.order!r}; valid: {', '.join(ORDERS)}.")
    for w in out.workloads:
        if w not in ("a", "b", "c"):
            raise ValueError(f"unknown workload {w!r}; valid: a, b, c.")
    for lib in out.libraries:
        if lib not in LIBRARIES:
            raise ValueError(f"unknown library {lib!r}; valid: {', '.join(LIBRARIES)}.")
    for name in ("repeats", "a_neurons", "a_steps", "b_steps", "b_batch"):
        if getattr(out, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(out, name)}.")
    if out.warmup < 0 or any(n < 1 for n in out.b_sizes) or not out.b_sizes:
        raise ValueError("--warmup must be >= 0 and --b-sizes positive integers.")
    if not out.c_sizes or any(n < 8 for n in out.c_sizes):
        raise ValueError("--c-sizes must be neuron-step counts >= 8 (T = 8 steps).")
    return out


def _targets(result: dict, libs: list[str]) -> dict:
    targets: dict[str, dict] = {}
    a = result.get("workload_a")
    if a:
        fb = a["ratios"]["forward_backward"]
        for lib, goal in (("spikingjelly", 4.0), ("snntorch", 8.0)):
            value = fb.get(f"{lib}_over_snnlab")
            targets[f"a_forward_backward_{lib}_over_snnlab_at_least_{goal:g}"] = (
                {"value": value, "met": value >= goal} if value is not None else {"skipped": f"{lib} not measured"}
            )
        value = fb.get("snnlab_over_roofline")
        targets["a_forward_backward_snnlab_over_roofline_at_most_2"] = {"value": value, "met": value <= 2.0}
    b = result.get("workload_b")
    if b:
        for n, entry in b["by_n"].items():
            for phase in ("forward_backward", "forward", "backward"):
                measured = {k: v for k, v in entry["ratios"][phase].items() if v is not None}
                suffix = "" if phase == "forward_backward" else f"_{phase}"
                targets[f"b_n{n}_faster_than_every_baseline{suffix}"] = {
                    "slowest_baseline_over_snnlab": min(measured.values()) if measured else None,
                    "met": bool(measured) and all(v > 1.0 for v in measured.values()),
                    "baselines": sorted(k.replace("_over_snnlab", "") for k in measured),
                }
    return targets


def run(args: argparse.Namespace) -> dict:
    """Run the selected workloads and return the JSON-ready result."""
    args = _resolve(args)
    if args.allocator == "reuse" and not _use_reuse_allocator():
        raise RuntimeError("--allocator reuse needs glibc's mallopt, which is not available here.")
    status = {lib: _availability(lib) for lib in args.libraries}
    libs = [lib for lib in args.libraries if status[lib]["available"]]
    if "snnlab" not in libs:
        libs.insert(0, "snnlab")
        status["snnlab"] = _availability("snnlab")
    for lib, entry in status.items():
        entry["mapping"] = MAPPINGS[lib]
    result: dict = {
        "dynamics": DYNAMICS,
        "libraries": status,
        "settings": {
            "quick": args.quick, "repeats": args.repeats, "warmup": args.warmup, "allocator": args.allocator,
            "order": args.order,
            "torch_threads": torch.get_num_threads(), "timing": "min over repeats (median also given)",
        },
        "load_average_1m_start": os.getloadavg()[0],
    }
    if "a" in args.workloads:
        result["spike_agreement_with_snnlab"] = _spike_agreement(libs, 8, 4096)
        result["workload_a"] = _workload_a(args, libs)
    if "b" in args.workloads:
        result["workload_b"] = _workload_b(args, libs)
    if "c" in args.workloads:
        result["workload_c_thread_team"] = _workload_c(args)
    result["targets"] = _targets(result, libs)
    result["load_average_1m_end"] = os.getloadavg()[0]
    return result


def _main(argv: list[str]) -> int:
    if argv[:1] == ["--peak-rss-child"]:
        lib, n, T, B, allocator = argv[1], int(argv[2]), int(argv[3]), int(argv[4]), argv[5]
        _peak_rss_child(lib, n, T, B, allocator)
        return 0
    parser = argparse.ArgumentParser(prog="python -m snnlab.bench.neurons", description=__doc__.splitlines()[0])
    add_arguments(parser)
    print(json.dumps(run(parser.parse_args(argv)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
