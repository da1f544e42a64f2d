"""What one benchmark process measures: one library, eager or compiled, on one workload.

``snnlab bench neurons`` starts a fresh Python process per (workload, library, eager/compiled) and
reads the JSON it prints (:func:`run_child`); so no library runs after another in the same heap,
allocator state or thread pools, and each one's caches are its own. Inside a process the calls are
timed back to back after a warm-up (the first call, which also compiles under ``torch.compile``, is
timed on its own as ``first_call_s``), with ``gc.collect()`` before each call; a process reports the
minimum and the median of its repeats. Training steps take a fixed upstream gradient ``g``
(``out.backward(g)``), not ``.sum()``, so every library's backward does the same work.

Also here: the one-process check (every eager library in one process, as the benchmark used to run
them) and the profiler's split of workload (d)'s training step into convolution, batch norm,
neuron (or fused batch norm + neuron) and the rest (:func:`profile_split`).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import resource
import statistics
import time
from collections.abc import Callable

import torch

from snnlab.bench import peers

__all__ = ["run_child", "timed", "profile_split", "saved_bytes", "rss_bytes", "use_reuse_allocator"]


# ------------------------------------------------------------------------------------------------
# timing helpers
# ------------------------------------------------------------------------------------------------


def timed(fn: Callable[[], object], warmup: int, repeats: int) -> dict:
    """``fn``'s first call (``first_call_s``: compilation included), then ``warmup - 1`` more untimed
    calls and ``repeats`` timed ones: ``{"first_call_s", "min_s", "median_s", "repeats"}``."""
    gc.collect()
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    for _ in range(max(0, warmup - 1)):
        fn()
    times = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"first_call_s": first, "min_s": min(times), "median_s": statistics.median(times), "repeats": repeats}


def saved_bytes(fn: Callable[[], object]) -> int:
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


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def use_reuse_allocator() -> bool:
    """glibc: serve large blocks from the heap and keep freed memory (M_MMAP_THRESHOLD=-3, M_TRIM_THRESHOLD=-1)."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(-3, 1 << 30)) and bool(libc.mallopt(-1, (1 << 31) - 1))


def _maybe_compile(fn, compiled: bool):
    return torch.compile(fn) if compiled else fn


# ------------------------------------------------------------------------------------------------
# workload (a): one LIF layer
# ------------------------------------------------------------------------------------------------


def _a_inputs(T: int, N: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(T, N, generator=g) * 0.7 + 0.6
    return x, torch.randn(T, N, generator=g)


def _agreement(lib: str, compiled: bool) -> float:
    """Fraction of spikes equal to snnlab's (eager) on a check input: the mapping is the same dynamics."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 4096, generator=g) * 0.7 + 0.6
    with torch.no_grad():
        ref = peers.build_neuron("snnlab")(x)
        mine = _maybe_compile(peers.build_neuron(lib), compiled)(x)
    return float((mine == ref).float().mean())


def workload_a(lib: str, compiled: bool, p: dict) -> dict:
    T, N, warmup, repeats = p["steps"], p["neurons"], p["warmup"], p["repeats"]
    x, grad = _a_inputs(T, N)
    if lib == "copy-roofline":
        # the bytes the kernels must move: forward reads X and writes S (8 bytes per neuron-step);
        # training's forward also writes H, its backward reads dL/dS and H and writes dL/dX (24)
        out = {}
        for phase, per in (("forward", 8), ("forward_backward", 24)):
            numel = max(1, (per * T * N + (8 if phase == "forward" else 16) * N) // 8)
            src, dst = torch.ones(numel), torch.empty(numel)
            out[phase] = {**timed(lambda: dst.copy_(src), warmup, repeats), "bytes_read_and_written": 8 * numel}
        return out
    neuron = _maybe_compile(peers.build_neuron(lib), compiled)
    xr = x.clone().requires_grad_()

    def forward() -> None:
        with torch.no_grad():
            neuron(x)

    def forward_backward() -> None:
        xr.grad = None
        neuron(xr).backward(grad)

    result = {"forward": timed(forward, warmup, repeats), "forward_backward": timed(forward_backward, warmup, repeats)}
    with torch.no_grad():
        result["firing_rate"] = float(neuron(x).float().mean())
    result["spike_agreement_with_snnlab"] = _agreement(lib, compiled)
    return result


def one_process(libs: list[str], p: dict, order: str) -> dict:
    """Workload (a), eager, every library of ``libs`` in this one process: ``order="blocks"`` times
    each library's calls back to back, ``"rounds"`` the libraries in turn, call after call."""
    T, N, warmup, repeats = p["steps"], p["neurons"], p["warmup"], p["repeats"]
    x, grad = _a_inputs(T, N)
    xr = x.clone().requires_grad_()
    neurons = {lib: peers.build_neuron(lib) for lib in libs}

    def call(lib: str) -> None:
        xr.grad = None
        neurons[lib](xr).backward(grad)

    schedule = ([(lib, r) for lib in libs for r in range(warmup + repeats)] if order == "blocks"
                else [(lib, r) for r in range(warmup + repeats) for lib in libs])
    times: dict[str, list[float]] = {lib: [] for lib in libs}
    for lib, r in schedule:
        gc.collect()
        t0 = time.perf_counter()
        call(lib)
        if r >= warmup:
            times[lib].append(time.perf_counter() - t0)
    return {lib: {"forward_backward": {"min_s": min(ts), "median_s": statistics.median(ts), "repeats": repeats}}
            for lib, ts in times.items()}


# ------------------------------------------------------------------------------------------------
# workload (b): Linear(n, n) + LIF over a long sequence
# ------------------------------------------------------------------------------------------------


def _b_inputs(T: int, B: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(T, B, n, generator=g) < 0.3).float()
    return x, torch.randn(T, B, n, generator=g)


def _peak_rss_increase(model, linear, n: int, T: int, B: int) -> int:
    """Peak resident memory one training step adds, measured before anything large ran in this
    process (the peak of a process only grows): a warm-up on a tiny input, then one full step."""
    model(torch.rand(2, 2, n)).sum().backward()
    x, grad = _b_inputs(T, B, n)
    linear.zero_grad(set_to_none=True)
    gc.collect()
    before = rss_bytes()
    model(x).backward(grad)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return max(0, peak - before)


def workload_b(lib: str, compiled: bool, p: dict) -> dict:
    """``lib``'s LIF after ``Linear(n, n)`` (or the Linear alone: ``linear-only``) on ``[T, B, n]`` spikes."""
    T, B, n, warmup, repeats = p["steps"], p["batch"], p["n"], p["warmup"], p["repeats"]
    torch.manual_seed(0)
    linear = torch.nn.Linear(n, n)
    if lib == "linear-only":
        model = linear
    else:
        neuron = peers.build_neuron(lib)
        model = _maybe_compile(lambda x: neuron(linear(x)), compiled)
    entry: dict = {}
    if p.get("peak_memory") and not compiled and lib != "linear-only":
        entry["peak_rss_increase_bytes"] = _peak_rss_increase(model, linear, n, T, B)
    x, grad = _b_inputs(T, B, n)
    fwd, bwd = [], []
    first = None
    firing_rate = None
    for r in range(warmup + repeats):
        linear.zero_grad(set_to_none=True)
        gc.collect()
        t0 = time.perf_counter()
        y = model(x)
        t1 = time.perf_counter()
        y.backward(grad)
        t2 = time.perf_counter()
        if firing_rate is None and lib != "linear-only":
            # read from a timed call: a separate no-grad call would make torch.compile build (and, at
            # T = 500, spend many minutes on) a second, inference-only graph
            firing_rate = float(y.detach().float().mean())
        del y
        if first is None:
            first = t2 - t0
        if r >= warmup:
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
    for phase, ts in (("forward", fwd), ("backward", bwd), ("forward_backward", [a + b for a, b in zip(fwd, bwd)])):
        entry[phase] = {"min_s": min(ts), "median_s": statistics.median(ts), "repeats": repeats}
    entry["first_call_s"] = first
    if lib != "linear-only":
        entry["firing_rate"] = firing_rate
        entry["saved_for_backward_bytes"] = saved_bytes(lambda: model(x))
    return entry


# ------------------------------------------------------------------------------------------------
# workload (c): where snnlab's thread team starts to pay
# ------------------------------------------------------------------------------------------------


def workload_c(p: dict) -> dict:
    from snnlab import cpu_threads

    T = 8
    neuron = peers.build_neuron("snnlab")
    g = torch.Generator().manual_seed(3)
    rows = []
    for work in p["sizes"]:
        x = (torch.randn(T, max(1, work // T), generator=g) * 0.7 + 0.6).requires_grad_()
        grad = torch.randn(x.shape, generator=g)
        times: dict[str, list[float]] = {"one_thread": [], "team": []}
        for r in range(p["warmup"] + p["repeats"]):
            for name, limit in (("one_thread", 1 << 62), ("team", 0)):   # in turn: load drift hits both
                with cpu_threads.parallel_min_work(limit):
                    x.grad = None
                    t0 = time.perf_counter()
                    neuron(x).backward(grad)
                    if r >= p["warmup"]:
                        times[name].append(time.perf_counter() - t0)
        entry = {name: {"min_s": min(ts), "median_s": statistics.median(ts)} for name, ts in times.items()}
        entry["neuron_steps"] = int(x.numel())
        entry["team_speedup"] = entry["one_thread"]["min_s"] / entry["team"]["min_s"]
        rows.append(entry)
    faster = [r["neuron_steps"] for r in rows if r["team_speedup"] > 1.0]
    return {
        "steps": T, "team_threads": cpu_threads.kernel_thread_count(1 << 62), "rows": rows,
        "smallest_size_where_team_is_faster": min(faster) if faster else None,
        "parallel_min_work_in_use": cpu_threads.PARALLEL_MIN_WORK,
    }


# ------------------------------------------------------------------------------------------------
# workload (d): a whole training step of a convolutional SNN
# ------------------------------------------------------------------------------------------------

_CATEGORIES = ("conv", "bn", "neuron", "bn_neuron", "rest")


def _category(module: torch.nn.Module) -> str | None:
    if isinstance(module, torch.nn.Conv2d):
        return "conv"
    if isinstance(module, torch.nn.BatchNorm2d):
        return "bn"
    name = type(module).__module__ + "." + type(module).__name__
    if "BatchNormNeuron" in name:                      # snnlab's fused batch norm + neuron
        return "bn_neuron"
    if any(k in name for k in ("LIFNode", "_SnntorchLIF", "Leaky")):
        return "neuron"
    return None


@contextlib.contextmanager
def _labelled(model: torch.nn.Module):
    """Mark each convolution, batch norm and neuron's forward as a profiler range ``bench::<kind>``."""
    from torch.autograd.profiler import record_function

    handles, open_ranges = [], {}
    for m in model.modules():
        kind = _category(m)
        if kind is None:
            continue

        def pre(mod, args, kind=kind):
            rng = record_function(f"bench::{kind}")
            rng.__enter__()
            open_ranges[id(mod)] = rng

        def post(mod, args, out):
            open_ranges.pop(id(mod)).__exit__(None, None, None)

        handles += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def profile_split(model: torch.nn.Module, step: Callable[[], object], compiled: bool) -> dict:
    """Seconds of one training step spent in convolutions, batch norms, neurons (``bn_neuron``:
    snnlab's fused :class:`snnlab.layers.BatchNormNeuron`) and the rest, from the torch profiler
    (CPU time of this process's events).

    Eager: the forward of each layer is a labelled range; each backward node is attributed to the
    layer whose forward created it (autograd's sequence numbers link the two), so the neuron's
    share includes its backward. Compiled: Inductor's graph has no layers left; its events are split
    by name (extern convolutions, kernels named for batch norm, snnlab's ``snnlab::`` operators) and
    the remaining fused kernels are reported as ``fused_other`` (for a compiled peer that is where
    its neuron went, fused with pooling and the like)."""
    from torch.profiler import ProfilerActivity, profile

    with _labelled(model) if not compiled else contextlib.nullcontext():
        step()                                                   # warm (and compile) with the hooks in place
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            step()
            wall = time.perf_counter() - t0
    events = prof.events()
    split = dict.fromkeys(_CATEGORIES, 0.0)
    if not compiled:
        by_seq: dict[int, str] = {}

        def mark(e, kind):
            if e.sequence_nr is not None and e.sequence_nr >= 0:
                by_seq.setdefault(e.sequence_nr, kind)
            for child in e.cpu_children:
                mark(child, kind)

        for e in events:
            if e.name.startswith("bench::") and (e.cpu_parent is None or not e.cpu_parent.name.startswith("bench::")):
                kind = e.name.split("::", 1)[1]
                split[kind] += e.cpu_time_total / 1e6
                mark(e, kind)
        for e in events:
            if e.name.startswith("autograd::engine::evaluate_function") and e.cpu_parent is None:
                kind = by_seq.get(e.sequence_nr)
                if kind is not None:
                    split[kind] += e.cpu_time_total / 1e6
    else:
        split["fused_other"] = 0.0
        for e in events:
            if e.cpu_parent is None or not e.cpu_parent.name.startswith("## Call CompiledFxGraph"):
                continue                                         # only the compiled graphs' own calls
            name = e.name                                        # e.g. graph_0_cpp_fused__native_batch_norm_..._1
            if name.startswith("snnlab::"):
                split["neuron"] += e.cpu_time_total / 1e6
            elif "cpp_fused" in name:
                split["bn" if "batch_norm" in name else "fused_other"] += e.cpu_time_total / 1e6
            elif "convolution" in name:
                split["conv"] += e.cpu_time_total / 1e6
    split["total_wall_s"] = wall
    split["rest"] = max(0.0, wall - sum(v for k, v in split.items() if k not in ("rest", "total_wall_s")))
    split["method"] = ("eager: labelled forward ranges + backward nodes linked by sequence number"
                       if not compiled else "compiled: Inductor kernels and extern calls split by name")
    return split


def workload_d(lib: str, compiled: bool, p: dict) -> dict:
    spec = peers.ConvSpec(**p["spec"])
    frames = torch.load(p["frames"], weights_only=True)
    x, labels = frames["x"], frames["labels"]
    torch.manual_seed(0)
    reference = peers.build_conv_snn("snnlab", spec)
    model = peers.build_conv_snn(lib, spec)
    peers.copy_weights(reference, model)
    del reference
    model.train()
    run = _maybe_compile(model, compiled)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step() -> torch.Tensor:
        peers.reset_conv_snn(model)
        optimizer.zero_grad(set_to_none=True)
        out = run(x)
        loss = torch.nn.functional.cross_entropy(out.mean(0), labels)
        loss.backward()
        optimizer.step()
        return out

    t0 = time.perf_counter()
    first = step().detach()                                      # the first step: outputs compared across libraries
    first_call = time.perf_counter() - t0
    torch.save(first, p["outputs_path"])
    result = {"train_step": {**timed(step, p["warmup"], p["repeats"]), "first_call_s": first_call}}
    result["profile"] = profile_split(model, step, compiled)
    return result


# ------------------------------------------------------------------------------------------------
# the child process
# ------------------------------------------------------------------------------------------------


def run_child(spec: dict) -> dict:
    """Run one measurement described by ``spec`` (workload, library, compiled, threads, params) in
    this process and return its JSON-ready result, with this process's load average and versions."""
    from snnlab.cpu_threads import thread_budget

    if spec.get("allocator") == "reuse" and not use_reuse_allocator():
        raise RuntimeError("--allocator reuse needs glibc's mallopt, which is not available here.")
    workload, lib, compiled, params = spec["workload"], spec["library"], spec["compiled"], spec["params"]
    if compiled and workload == "d":
        # name Inductor's kernels in the profiler (set before compiling; costs a flag test per kernel call)
        import torch._inductor.config as inductor_config

        inductor_config.cpp.enable_kernel_profile = True
    load = os.getloadavg()[0]
    with thread_budget(spec["threads"]):
        if workload == "a":
            result = workload_a(lib, compiled, params)
        elif workload == "a-one-process":
            result = one_process(params["libraries"], params, params["order"])
        elif workload == "b":
            result = workload_b(lib, compiled, params)
        elif workload == "c":
            result = workload_c(params)
        elif workload == "d":
            result = workload_d(lib, compiled, params)
        else:
            raise ValueError(f"unknown workload {workload!r}")
        threads = torch.get_num_threads()
    return {"result": result, "load_average_1m": [load, os.getloadavg()[0]], "torch_threads": threads,
            "pid": os.getpid()}


def child_main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    print(json.dumps(run_child(spec)))
    return 0
