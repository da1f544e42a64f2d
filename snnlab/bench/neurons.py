"""Neuron kernels against SpikingJelly, snnTorch and Norse on CPU, eager and compiled, each in its own process.

Workloads, every library running the same neuron (:data:`snnlab.bench.peers.DYNAMICS`):

* (a) one LIF layer, T = 8 steps, N = 2^20 neurons: forward (inference, no graph) and forward +
  backward (``out.backward(g)`` with a fixed ``g``), next to a copy roofline (torch's parallel copy
  of the bytes the kernels must read and write);
* (b) ``Linear(n, n)`` then LIF, batch 16, T = 500, n in {512, 1024, 2048} (the Open Neuromorphic
  benchmark brought to CPU): forward, backward, the bytes autograd keeps, peak resident memory;
  the Linear alone is timed too (``linear-only``): it is the same for every library;
* (c) snnlab alone: where its thread team starts to pay (:data:`snnlab.cpu_threads.PARALLEL_MIN_WORK`);
* (d) a whole training step (forward, cross-entropy, backward, SGD) of one convolutional SNN
  (:class:`snnlab.bench.peers.ConvSpec`: conv-BN-LIF-maxpool x4 and a linear readout on emulated
  event frames 2x32x32, T = 8, batch 32) built in snnlab, SpikingJelly and snnTorch from the same
  weights; the first step's outputs are compared, and the profiler splits each step into
  convolution, batch norm, neuron and the rest (:func:`snnlab.bench.measure.profile_split`).

**Method.** Every (workload, library, eager or ``torch.compile``) runs in a fresh Python process
(:mod:`snnlab.bench.measure`) with ``--threads`` torch and Numba threads (default 2), repeated
``--rounds`` times (default 2); ``--order rounds`` (default) starts the processes configuration by
configuration, round after round, so load drift reaches all alike; ``blocks`` runs each
configuration's processes back to back. A configuration's figure is the median over its processes
of each process's minimum over ``--repeats`` timed calls (after ``--warmup`` calls; the first call,
with compilation, is reported on its own). Ratios compare figures from the same run.

**Targets** (issue 20), as ratios to the best peer (SpikingJelly, snnTorch, Norse; eager or
compiled, whichever is faster) against snnlab's best configuration (eager or compiled; the eager
ratio is given too): (a) forward + backward at least 2.5x and within 2x of the copy roofline; (b) at
least 1.5x for forward + backward and for forward alone, at every n; (d) at least 1.5x for the
training step. Each is marked met or missed, or *incomplete* when a peer configuration failed, timed
out or was not run (``missing_peers`` names each, with the reason: a verdict needs every peer, eager
and compiled; Norse is not a peer of (d), which it cannot express); for a missed one
``where_the_time_goes`` says where.

**The one-process check.** The benchmark used to time every library in one process. That is
measured too (workload a, eager, in both orders), and each library's one-process time is compared
with its own-process figure (``one_process_check``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from snnlab.bench.peers import CONFIGS, DYNAMICS, LIBRARIES, MAPPINGS, PEERS, availability, config_name

__all__ = ["add_arguments", "run", "LIBRARIES", "ORDERS", "MODES", "schedule", "aggregate", "targets"]

ORDERS = ("rounds", "blocks")
MODES = ("eager", "compiled")
WORKLOADS = ("a", "b", "c", "d")
_D_LIBRARIES = ("snnlab", "snnlab-torch", "spikingjelly", "snntorch")
"""Workload (d) is built in these (see :data:`_D_NOT_NORSE`)."""
_D_NOT_NORSE = ("Norse has no layer API for a convolutional SNN of its own; its LIF cell could be dropped into the "
                "snnTorch-style network, but its reset is not detachable and it has no ArcTan surrogate, so the "
                "training step would not be the same computation.")


# ------------------------------------------------------------------------------------------------
# the command
# ------------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round (a structural check, not the speed)")
    parser.add_argument("--workloads", default="a,b,c,d", help="comma-separated: a, b, c, d (default all four)")
    parser.add_argument("--libraries", default=",".join(LIBRARIES), help=f"comma-separated subset of {', '.join(LIBRARIES)}")
    parser.add_argument("--modes", default="eager,compiled",
                        help="comma-separated: eager, compiled (torch.compile, Inductor); default both")
    parser.add_argument("--rounds", type=int, default=None, help="processes per configuration (default 2; quick 1)")
    parser.add_argument("--repeats", type=int, default=None, help="timed calls per process (default 7; quick 1)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first, compilation included (default 2; quick 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch and Numba threads in every process (default 2)")
    parser.add_argument("--order", choices=ORDERS, default="rounds",
                        help="'rounds' (default): the configurations' processes in turn, round after round; "
                        "'blocks': each configuration's processes back to back")
    parser.add_argument("--a-neurons", type=int, default=None, help="workload a: neurons (default 2^20)")
    parser.add_argument("--a-steps", type=int, default=None, help="workload a: timesteps (default 8)")
    parser.add_argument("--b-sizes", default=None, help="workload b: comma-separated n (default 512,1024,2048)")
    parser.add_argument("--b-steps", type=int, default=None, help="workload b: timesteps (default 500)")
    parser.add_argument("--b-batch", type=int, default=None, help="workload b: batch size (default 16)")
    parser.add_argument("--c-sizes", default=None,
                        help="workload c: comma-separated neuron-step counts (default 2^12..2^22 in steps of 4x)")
    parser.add_argument("--d-channels", default=None, help="workload d: conv channels (default 32,64,128,256)")
    parser.add_argument("--d-size", type=int, default=None, help="workload d: frame side (default 32)")
    parser.add_argument("--d-steps", type=int, default=None, help="workload d: timesteps (default 8)")
    parser.add_argument("--d-batch", type=int, default=None, help="workload d: batch size (default 32)")
    parser.add_argument("--one-process-check", dest="one_process_check", action="store_true", default=None,
                        help="also time workload a's eager libraries in one process (default on; off in quick mode)")
    parser.add_argument("--no-one-process-check", dest="one_process_check", action="store_false")
    parser.add_argument("--allocator", choices=("default", "reuse"), default="default",
                        help="'reuse' keeps freed large blocks in glibc's heap (no page faults on reuse)")
    parser.add_argument("--peak-memory", dest="peak_memory", action="store_true", default=None,
                        help="workload b: peak RSS of one eager training step (default on; off in quick mode)")
    parser.add_argument("--no-peak-memory", dest="peak_memory", action="store_false")
    parser.add_argument("--child-timeout", type=float, default=3600.0,
                        help="seconds one measurement process may take (compiling T=500 loops is slow)")


def _ints(text) -> list[int]:
    return [int(s) for s in str(text).split(",") if s.strip()]


def _words(text) -> list[str]:
    return [w.strip() for w in str(text).split(",") if w.strip()]


def _resolve(args: argparse.Namespace) -> argparse.Namespace:
    quick = bool(getattr(args, "quick", False))

    def pick(name: str, full, small):
        value = getattr(args, name, None)
        return (small if quick else full) if value is None else value

    out = argparse.Namespace(**vars(args))
    out.quick = quick
    out.rounds = pick("rounds", 2, 1)
    out.repeats = pick("repeats", 7, 1)
    out.warmup = pick("warmup", 2, 1)
    out.threads = getattr(args, "threads", 2)
    out.a_neurons = pick("a_neurons", 1 << 20, 1 << 12)
    out.a_steps = pick("a_steps", 8, 4)
    out.b_sizes = _ints(pick("b_sizes", "512,1024,2048", "16"))
    out.b_steps = pick("b_steps", 500, 8)
    out.b_batch = pick("b_batch", 16, 2)
    out.c_sizes = _ints(pick("c_sizes", ",".join(str(1 << k) for k in range(12, 23, 2)), "4096,65536"))
    out.d_channels = tuple(_ints(pick("d_channels", "32,64,128,256", "4,8")))
    out.d_size = pick("d_size", 32, 8)
    out.d_steps = pick("d_steps", 8, 2)
    out.d_batch = pick("d_batch", 32, 2)
    out.one_process_check = pick("one_process_check", True, False)
    out.peak_memory = pick("peak_memory", True, False)
    out.workloads = _words(getattr(args, "workloads", "a,b,c,d"))
    out.libraries = _words(getattr(args, "libraries", ",".join(LIBRARIES)))
    out.modes = _words(getattr(args, "modes", "eager,compiled"))
    out.order = getattr(args, "order", "rounds")
    out.allocator = getattr(args, "allocator", "default")
    out.child_timeout = float(getattr(args, "child_timeout", 3600.0))
    if out.order not in ORDERS:
        raise ValueError(f"unknown --order {out.order!r}; valid: {', '.join(ORDERS)}.")
    for w in out.workloads:
        if w not in WORKLOADS:
            raise ValueError(f"unknown workload {w!r}; valid: {', '.join(WORKLOADS)}.")
    for lib in out.libraries:
        if lib not in LIBRARIES:
            raise ValueError(f"unknown library {lib!r}; valid: {', '.join(LIBRARIES)}.")
    for mode in out.modes:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}.")
    if not out.modes:
        raise ValueError("--modes needs eager, compiled or both.")
    for name in ("rounds", "repeats", "threads", "a_neurons", "a_steps", "b_steps", "b_batch", "d_size",
                 "d_steps", "d_batch"):
        if getattr(out, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(out, name)}.")
    if out.warmup < 1:
        raise ValueError(f"--warmup must be >= 1 (the first call, which compiles, is never timed), got {out.warmup}.")
    if not out.b_sizes or any(n < 1 for n in out.b_sizes):
        raise ValueError("--b-sizes must be positive integers.")
    if not out.c_sizes or any(n < 8 for n in out.c_sizes):
        raise ValueError("--c-sizes must be neuron-step counts >= 8 (T = 8 steps).")
    if not out.d_channels or any(c < 1 for c in out.d_channels) or out.d_size >> len(out.d_channels) < 1:
        raise ValueError(f"--d-channels must be positive and --d-size ({out.d_size}) at least 2^{len(out.d_channels)} "
                         f"(one 2x2 pooling per block).")
    return out


# ------------------------------------------------------------------------------------------------
# processes
# ------------------------------------------------------------------------------------------------


def schedule(configs: list, rounds: int, order: str) -> list[tuple[object, int]]:
    """The processes to start as ``(configuration, round)`` pairs: ``"rounds"`` every configuration
    in turn, round after round; ``"blocks"`` each configuration's rounds back to back."""
    if order == "rounds":
        return [(c, r) for r in range(rounds) for c in configs]
    return [(c, r) for c in configs for r in range(rounds)]


def _spawn(spec: dict, timeout: float) -> dict:
    """Run one measurement in a fresh process; ``{"error": ...}`` if it fails."""
    cmd = [sys.executable, "-m", "snnlab.bench.neurons", "--child", json.dumps(spec)]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        tail = [line for line in done.stderr.strip().splitlines() if line.strip()][-3:]
        return {"error": " | ".join(tail) or f"exit code {done.returncode}"}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"no JSON on stdout: {done.stdout[-200:]!r}"}


def aggregate(processes: list[dict]) -> dict:
    """One configuration's processes -> its figure: for every timed phase (a dict with ``min_s``),
    ``time_s`` = the median over processes of each process's minimum, with the per-process values;
    other fields are taken from the first process."""
    ok = [p for p in processes if "error" not in p]
    if not ok:
        return {"error": processes[0]["error"] if processes else "not run"}

    def merge(parts: list[dict]) -> dict:
        out: dict = {}
        for key, value in parts[0].items():
            if isinstance(value, dict) and "min_s" in value:
                mins = [p[key]["min_s"] for p in parts]
                out[key] = {"time_s": statistics.median(mins), "min_s_per_process": mins,
                            "median_s_per_process": [p[key]["median_s"] for p in parts],
                            "repeats_per_process": value.get("repeats")}
                firsts = [p[key].get("first_call_s") for p in parts if p[key].get("first_call_s") is not None]
                if firsts:
                    out[key]["first_call_s_per_process"] = firsts
                for extra in ("bytes_read_and_written",):
                    if extra in value:
                        out[key][extra] = value[extra]
            elif isinstance(value, dict) and all(isinstance(p.get(key), dict) for p in parts) and key != "profile":
                out[key] = merge([p[key] for p in parts])
            else:
                out[key] = value
        return out

    merged = merge([p["result"] for p in ok])
    merged["processes"] = len(ok)
    merged["pids"] = [p.get("pid") for p in ok]
    merged["load_average_1m_per_process"] = [p["load_average_1m"] for p in ok]
    if len(ok) < len(processes):
        merged["failed_processes"] = [p["error"] for p in processes if "error" in p]
    return merged


def _progress(message: str) -> None:
    """One line per measurement process on stderr (the JSON goes to stdout)."""
    print(f"[bench neurons {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _run_configs(workload: str, configs: list, params: dict, args, extra=lambda c: {}) -> dict:
    """Start the processes of ``configs`` (``(library, compiled)`` pairs or names) and aggregate them."""
    runs: dict = {c: [] for c in configs}
    for config, r in schedule(configs, args.rounds, args.order):
        lib, compiled = config if isinstance(config, tuple) else (config, False)
        spec = {"workload": workload, "library": lib, "compiled": compiled, "threads": args.threads,
                "allocator": args.allocator, "params": {**params, **extra(config)}}
        start = time.time()
        runs[config].append(_spawn(spec, args.child_timeout))
        error = runs[config][-1].get("error")
        label = config_name(*config) if isinstance(config, tuple) else config
        size = f" n={params['n']}" if "n" in params else ""
        _progress(f"workload {workload}{size} {label}, round {r + 1}/{args.rounds}: {time.time() - start:.0f} s"
                  + (f", FAILED: {error}" if error else ""))
    return {(config_name(*c) if isinstance(c, tuple) else c): aggregate(ps) for c, ps in runs.items()}


# ------------------------------------------------------------------------------------------------
# workloads
# ------------------------------------------------------------------------------------------------


def _time(entry: dict | None, phase: str) -> float | None:
    if not entry or "error" in entry or phase not in entry:
        return None
    return entry[phase]["time_s"]


def _ratios(results: dict, phase: str) -> dict:
    """``<config>_over_snnlab`` for every measured configuration (above 1: snnlab eager is faster)."""
    ours = _time(results.get("snnlab"), phase)
    return {f"{name}_over_snnlab": (t / ours if t and ours else None)
            for name, entry in results.items() if name != "snnlab" and (t := _time(entry, phase))}


def _workload_a(args, configs: list) -> dict:
    params = {"steps": args.a_steps, "neurons": args.a_neurons, "warmup": args.warmup, "repeats": args.repeats}
    results = _run_configs("a", configs + ["copy-roofline"], params, args)
    roofline = results.pop("copy-roofline")
    out = {"steps": args.a_steps, "neurons": args.a_neurons, "results": results, "roofline": roofline,
           "ratios": {phase: _ratios(results, phase) for phase in ("forward", "forward_backward")}}
    roofline["note"] = ("torch's parallel copy of the bytes the kernels read and write, in its own process: forward "
                        "8 bytes per neuron-step (read X, write S), forward + backward 24 (also write H; read dL/dS and "
                        "H, write dL/dX)")
    return out


def _one_process_check(args, configs: list, own: dict) -> dict:
    """Workload a, eager, every library in one process, in both orders, against its own-process figure."""
    libs = [lib for lib, compiled in configs if not compiled]
    params = {"steps": args.a_steps, "neurons": args.a_neurons, "warmup": args.warmup, "repeats": args.repeats,
              "libraries": libs}
    out: dict = {"method": "workload a forward + backward, eager libraries in one process; ratio = that time / "
                           "the library's own-process figure (above 1: slower in the shared process)"}
    for order in ORDERS:
        spec = {"workload": "a-one-process", "library": "all", "compiled": False, "threads": args.threads,
                "allocator": args.allocator, "params": {**params, "order": order}}
        child = _spawn(spec, args.child_timeout)
        if "error" in child:
            out[order] = {"error": child["error"]}
            continue
        times = {lib: r["forward_backward"]["min_s"] for lib, r in child["result"].items()}
        out[order] = {
            "one_process_s": times,
            "one_process_over_own_process": {lib: (t / o if (o := _time(own.get(lib), "forward_backward")) else None)
                                             for lib, t in times.items()},
            "load_average_1m": child["load_average_1m"],
        }
    return out


def _workload_b(args, configs: list) -> dict:
    per_n: dict[str, dict] = {}
    for n in args.b_sizes:
        params = {"steps": args.b_steps, "batch": args.b_batch, "n": n, "warmup": args.warmup,
                  "repeats": args.repeats, "peak_memory": args.peak_memory}
        results = _run_configs("b", configs + ["linear-only"], params, args)
        linear_only = results.pop("linear-only")
        ratios = {phase: _ratios(results, phase) for phase in ("forward", "backward", "forward_backward")}
        for key in ("saved_for_backward_bytes", "peak_rss_increase_bytes"):
            ours = (results.get("snnlab") or {}).get(key)
            if ours:
                ratios[key] = {f"{name}_over_snnlab": e[key] / ours for name, e in results.items()
                               if name != "snnlab" and isinstance(e.get(key), (int, float))}
        per_n[str(n)] = {"results": results, "linear_only": linear_only, "ratios": ratios}
    return {"steps": args.b_steps, "batch": args.b_batch, "sizes": list(args.b_sizes), "by_n": per_n}


def _workload_c(args) -> dict:
    params = {"sizes": args.c_sizes, "warmup": args.warmup, "repeats": args.repeats}
    spec = {"workload": "c", "library": "snnlab", "compiled": False, "threads": args.threads,
            "allocator": args.allocator, "params": params}
    child = _spawn(spec, args.child_timeout)
    if "error" in child:
        return {"error": child["error"]}
    return {**child["result"], "load_average_1m": child["load_average_1m"]}


def _workload_d(args, configs: list, workdir: Path) -> dict:
    import torch

    from snnlab.bench.peers import CONV_SNN_BUILT_AS, ConvSpec, event_frames

    spec = ConvSpec(channels=args.d_channels, size=args.d_size, steps=args.d_steps, batch=args.d_batch)
    x, labels = event_frames(spec)
    frames = workdir / "d_frames.pt"
    torch.save({"x": x, "labels": labels}, frames)
    mine = [c for c in configs if c[0] in _D_LIBRARIES]
    params = {"spec": {"channels": list(spec.channels), "size": spec.size, "steps": spec.steps, "batch": spec.batch},
              "frames": str(frames), "warmup": args.warmup, "repeats": args.repeats}
    paths = {c: workdir / f"d_outputs_{config_name(*c)}.pt" for c in mine}
    results = _run_configs("d", mine, params, args, extra=lambda c: {"outputs_path": str(paths[c])})
    agreement = {}
    reference = torch.load(paths[("snnlab", False)], weights_only=True) if paths.get(("snnlab", False), Path()).is_file() else None
    for c, path in paths.items():
        if reference is not None and path.is_file():
            out = torch.load(path, weights_only=True)
            agreement[config_name(*c)] = {"max_abs_difference": float((out - reference).abs().max()),
                                          "equal": bool(torch.equal(out, reference))}
    return {"network": spec.describe(), "built_as": CONV_SNN_BUILT_AS, "input": "emulated DVS recordings of digits (snnlab.data.emulated, "
            f"{spec.size}x{spec.size} sensor), {spec.steps} frames each; event density {float((x > 0).float().mean()):.3f}",
            "not_built_in": {"norse": _D_NOT_NORSE},
            "results": results, "first_step_outputs_vs_snnlab": agreement,
            "ratios": {"train_step": _ratios(results, "train_step")}}


# ------------------------------------------------------------------------------------------------
# targets
# ------------------------------------------------------------------------------------------------


def _best(results: dict, phase: str, libs) -> tuple[str | None, float | None]:
    best = (None, None)
    for name, entry in results.items():
        if name.split("+")[0] in libs and (t := _time(entry, phase)) is not None and (best[1] is None or t < best[1]):
            best = (name, t)
    return best


def _missing_peers(results: dict, phase: str, peers, run: dict) -> dict[str, str]:
    """The peer configurations (each of ``peers`` eager and compiled) without a ``phase`` time in
    ``results``, each with the reason: its processes failed or timed out (their error), its library is
    not installed, or it was not selected (``--libraries``, ``--modes``)."""
    libraries = run.get("libraries") or {}
    settings = run.get("settings") or {}
    missing = {}
    for lib in peers:
        for compiled in (False, True):
            name = config_name(lib, compiled)
            entry = results.get(name)
            if _time(entry, phase) is not None:
                continue
            if entry is not None:
                missing[name] = f"failed: {entry['error']}" if "error" in entry else f"no {phase} time"
            elif lib in libraries and not libraries[lib].get("available", True):
                missing[name] = f"not installed: {libraries[lib].get('reason', 'unavailable')}"
            elif libraries and lib not in libraries:
                missing[name] = "not selected (--libraries)"
            elif settings.get("modes") and ("compiled" if compiled else "eager") not in settings["modes"]:
                missing[name] = "not selected (--modes)"
            else:
                missing[name] = "not run"
    return missing


def _target(results: dict, phase: str, goal: float, what: str, run: dict, peers=PEERS) -> dict:
    """One target: ``status`` "met" or "missed" when snnlab and every peer configuration (``peers``,
    eager and compiled) were measured; "incomplete" otherwise, naming each missing peer (``missing_peers``)
    and giving the ratio to the best peer that was measured (``value``), which is not a verdict."""
    ours_name, ours = _best(results, phase, ("snnlab",))
    peer_name, peer = _best(results, phase, peers)
    missing = _missing_peers(results, phase, peers, run)
    out: dict = {"goal": what}
    if ours is None or peer is None:
        out.update(status="incomplete", met=None, value=None,
                   reason="snnlab not measured" if ours is None else "no peer measured")
    else:
        eager = _time(results.get("snnlab"), phase)
        out.update(value=peer / ours, snnlab_config=ours_name, snnlab_s=ours, best_peer=peer_name, best_peer_s=peer,
                   snnlab_eager_value=(peer / eager) if eager else None)
        if missing:
            out.update(status="incomplete", met=None, met_among_measured=peer / ours >= goal)
        else:
            out.update(status="met" if peer / ours >= goal else "missed", met=peer / ours >= goal)
    if missing:
        out["missing_peers"] = missing
        out["status_note"] = ("incomplete: no verdict without " + ", ".join(sorted(missing)) +
                              " (" + "; ".join(f"{k}: {v}" for k, v in sorted(missing.items())) + ")")
    return out


def targets(result: dict) -> dict:
    """Every target of issue 20 from a run's JSON: value, status (met, missed, or incomplete when a peer
    configuration failed, timed out or was not run, which it names) and the configurations compared."""
    out: dict[str, dict] = {}
    a = result.get("workload_a")
    if a:
        out["a_forward_backward_over_best_peer_at_least_2.5"] = _target(
            a["results"], "forward_backward", 2.5, "(a) forward + backward >= 2.5x the best peer", result)
        name, ours = _best(a["results"], "forward_backward", ("snnlab",))
        roof = _time(a["roofline"], "forward_backward")
        if ours and roof:
            out["a_forward_backward_within_2x_of_copy_roofline"] = {
                "goal": "(a) forward + backward <= 2x the copy roofline", "value": ours / roof, "met": ours / roof <= 2.0,
                "status": "met" if ours / roof <= 2.0 else "missed", "snnlab_config": name}
    b = result.get("workload_b")
    if b:
        for n, entry in b["by_n"].items():
            for phase, label in (("forward_backward", "forward + backward"), ("forward", "forward alone")):
                out[f"b_n{n}_{phase}_over_best_peer_at_least_1.5"] = _target(
                    entry["results"], phase, 1.5, f"(b) n={n}: {label} >= 1.5x the best peer", result)
    d = result.get("workload_d")
    if d:
        out["d_train_step_over_best_peer_at_least_1.5"] = _target(
            d["results"], "train_step", 1.5, "(d) training step >= 1.5x the best peer", result,
            peers=tuple(p for p in PEERS if p in _D_LIBRARIES))
    return out


def _share(part: float | None, whole: float | None) -> str:
    return f"{100 * part / whole:.0f} %" if part is not None and whole else "n/a"


def _s(seconds: float | None) -> str:
    return f"{seconds:.4g} s" if seconds is not None else "n/a"


def where_the_time_goes(result: dict, goals: dict) -> dict:
    """For each missed target, where the time goes (computed from the run's own measurements)."""
    notes: dict[str, str] = {}
    for key, t in goals.items():
        if t.get("status") != "missed":
            continue
        if key.startswith("a_"):
            r = result["workload_a"]["results"].get(t.get("snnlab_config") or "snnlab", {})
            f, fb = _time(r, "forward"), _time(r, "forward_backward")
            roof = _time(result["workload_a"]["roofline"], "forward_backward")
            notes[key] = (f"snnlab ({t.get('snnlab_config')}): forward {_s(f)} of {_s(fb)} forward + backward "
                          f"({_share(f, fb)}); the copy roofline moves the same bytes in {_s(roof)}; best peer "
                          f"{t.get('best_peer')} {_s(t.get('best_peer_s'))}.")
        elif key.startswith("b_"):
            n = key.split("_")[1][1:]
            entry = result["workload_b"]["by_n"][n]
            phase = "forward" if "_forward_over" in key else "forward_backward"
            lin = _time(entry["linear_only"], phase)
            ours = t.get("snnlab_s")
            peer = t.get("best_peer_s")
            ceiling = peer / lin if peer and lin else None
            notes[key] = (f"the shared Linear alone takes {_s(lin)} of snnlab's {_s(ours)} ({_share(lin, ours)}); the "
                          f"neuron is the rest. Even a neuron that took no time would reach at most best peer / Linear = " +
                          (f"{ceiling:.3g}x" if ceiling else "n/a") +
                          (" (< 1.5: the target cannot be met by the neuron)" if ceiling and ceiling < 1.5 else "") + ".")
        elif key.startswith("d_"):
            res = result["workload_d"]["results"]
            parts = []
            for name in (t.get("snnlab_config"), t.get("best_peer")):
                prof = (res.get(name) or {}).get("profile")
                if prof:
                    total = prof["total_wall_s"]
                    shares = ", ".join(f"{k} {_share(prof[k], total)}" for k in ("conv", "bn", "neuron", "bn_neuron", "fused_other", "rest")
                                       if k in prof)
                    parts.append(f"{name}: {shares} of {total:.4g} s (profiled step)")
            notes[key] = "; ".join(parts)
    return notes


# ------------------------------------------------------------------------------------------------
# run
# ------------------------------------------------------------------------------------------------


def _versions(status: dict) -> dict:
    import numba
    import torch

    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "numba": numba.__version__,
            **{lib: s["version"] for lib, s in status.items() if s.get("available")}}


def run(args: argparse.Namespace) -> dict:
    """Run the selected workloads, each configuration in its own processes; return the JSON-ready result."""
    args = _resolve(args)
    status = {lib: availability(lib) for lib in args.libraries}
    if "snnlab" not in status:
        status["snnlab"] = availability("snnlab")
    for lib, entry in status.items():
        entry["mapping"] = MAPPINGS[lib]
    libs = [lib for lib in status if status[lib]["available"]]
    configs = [(lib, compiled) for lib, compiled in CONFIGS
               if lib in libs and ("compiled" if compiled else "eager") in args.modes]
    if ("snnlab", False) not in configs:
        configs.insert(0, ("snnlab", False))   # the reference every ratio divides by
    started = time.time()
    result: dict = {
        "method": {
            "processes": "every (workload, library, eager|compiled) in a fresh Python process; the one-process "
                         "check below measures what sharing one process does",
            "figure": f"median over {args.rounds} process(es) of each process's minimum over {args.repeats} timed "
                      f"calls after {args.warmup} warm-up call(s) (the first call, with compilation, reported apart)",
            "order": f"{args.order}: " + ("configurations in turn, round after round" if args.order == "rounds"
                                           else "each configuration's processes back to back"),
            "threads": f"{args.threads} torch and Numba threads per process",
            "gradient": "forward + backward use out.backward(g) with a fixed random g (workload d: the loss)",
            "compiled": "torch.compile(model or neuron function), default Inductor backend",
            "targets": "ratios to the best peer (spikingjelly, snntorch, norse; eager or compiled) against "
                       "snnlab's best configuration; the eager snnlab ratio is given too",
        },
        "dynamics": DYNAMICS,
        "libraries": status,
        "configurations": [config_name(*c) for c in configs],
        "settings": {k: getattr(args, k) for k in ("quick", "rounds", "repeats", "warmup", "threads", "order",
                                                     "allocator", "workloads", "modes")},
        "versions": _versions(status),
        "load_average_1m_start": os.getloadavg()[0],
    }
    with tempfile.TemporaryDirectory(prefix="snnlab-bench-") as tmp:
        if "a" in args.workloads:
            result["workload_a"] = _workload_a(args, configs)
            if args.one_process_check:
                result["one_process_check"] = _one_process_check(args, configs, result["workload_a"]["results"])
        if "b" in args.workloads:
            result["workload_b"] = _workload_b(args, configs)
        if "c" in args.workloads:
            result["workload_c_thread_team"] = _workload_c(args)
        if "d" in args.workloads:
            result["workload_d"] = _workload_d(args, configs, Path(tmp))
    goals = targets(result)
    result["targets"] = goals
    result["where_the_time_goes"] = where_the_time_goes(result, goals)
    result["load_average_1m_end"] = os.getloadavg()[0]
    result["seconds"] = time.time() - started
    return result


def _main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        from snnlab.bench.measure import child_main

        return child_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m snnlab.bench.neurons", description=__doc__.splitlines()[0])
    add_arguments(parser)
    print(json.dumps(run(parser.parse_args(argv)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
