"""torch.compile across the model registry: graph breaks, compiled against eager, and the time it takes.

For every model of :data:`snnlab.models.MODELS` (or ``--models``), in its own process:
``torch.compile(model, fullgraph=True)`` (a graph break anywhere is an error, reported with
TorchDynamo's reasons from ``torch._dynamo.explain``), then one training-mode forward + backward
on random input ``[T, B, 3, H, W]`` eager and compiled, from the same weights and fresh neuron
states: the outputs and every neuron layer's spikes are compared exactly, the parameter gradients
to float32 rounding. Reported per model: ``fullgraph`` (compiled without a graph break), the
number of graph breaks, ``spikes_equal``, the largest output and gradient differences, the
compile time (first call) and the medians of ``--repeats`` eager and compiled training steps.

With the default Inductor backend, compiled and eager outputs may differ by float32 rounding
(Inductor computes batch norm in its own loops); spikes are then compared exactly all the same,
and a spike that flips on a tie at the threshold would show as ``spikes_equal: false``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

__all__ = ["add_arguments", "run", "check_model"]

QUICK_MODELS = ("spiking_mlp", "spiking_cnn")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK_MODELS)}, 16x16 input, aot_eager")
    parser.add_argument("--models", default=None, help="comma-separated registry names (default: every model)")
    parser.add_argument("--backend", default=None, help="torch.compile backend (default inductor; quick: aot_eager)")
    parser.add_argument("--T", type=int, default=2, help="timesteps of the check input")
    parser.add_argument("--batch", type=int, default=2, help="batch of the check input")
    parser.add_argument("--size", type=int, default=None, help="image side of the check input (default 32; quick 16)")
    parser.add_argument("--repeats", type=int, default=3, help="timed training steps, eager and compiled")
    parser.add_argument("--threads", type=int, default=2, help="torch and Numba threads")
    parser.add_argument("--child-timeout", type=float, default=3600.0, help="seconds one model may take")


def _spike_hooks(model):
    from snnlab.neurons import StatefulNode

    store, handles = {}, []
    for name, m in model.named_modules():
        if isinstance(m, StatefulNode):
            handles.append(m.register_forward_hook(lambda mod, a, out, name=name: store.__setitem__(name, out.detach())))
    return store, handles


def check_model(name: str, *, backend: str = "inductor", T: int = 2, batch: int = 2, size: int = 32,
                repeats: int = 3) -> dict:
    """Compile registry model ``name`` with ``fullgraph=True`` and compare it with eager (module docstring)."""
    import torch

    from snnlab.models import build_model
    from snnlab.neurons import reset_states

    torch.manual_seed(0)
    model = build_model(name, num_classes=10, input_shape=(3, size, size), T=T).train()
    x = torch.rand(T, batch, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2
    store, handles = _spike_hooks(model)

    def step(fn):
        reset_states(model)
        model.zero_grad(set_to_none=True)
        out = fn(x)
        out.square().mean().backward()
        return out.detach()

    ref = step(model)
    eager_spikes = dict(store)
    eager_grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    store.clear()
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    result: dict = {"model": name, "backend": backend, "input": [T, batch, 3, size, size],
                    "parameters": sum(p.numel() for p in model.parameters()),
                    "neuron_layers": len(eager_spikes)}
    start = time.perf_counter()
    try:
        out = step(compiled)
    except Exception as error:  # a graph break (fullgraph) or a compiler failure: say which, and why
        result.update(fullgraph=False, error=f"{type(error).__name__}: {str(error).splitlines()[0][:300]}")
        for h in handles:
            h.remove()
        try:
            torch._dynamo.reset()
            explanation = torch._dynamo.explain(model)(x)
            result["graph_breaks"] = explanation.graph_break_count
            result["break_reasons"] = [str(b.reason).splitlines()[0][:200] for b in explanation.break_reasons[:5]]
        except Exception as error2:
            result["explain_error"] = f"{type(error2).__name__}: {str(error2)[:200]}"
        return result
    result["compile_seconds"] = time.perf_counter() - start
    compiled_grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    for h in handles:
        h.remove()
    result["fullgraph"] = True
    result["graph_breaks"] = 0
    result["spikes_equal"] = sorted(store) == sorted(eager_spikes) and all(
        torch.equal(store[k], v) for k, v in eager_spikes.items())
    result["spike_mismatches"] = int(sum(int((store[k] != v).sum()) for k, v in eager_spikes.items() if k in store))
    result["outputs_equal"] = bool(torch.equal(out, ref))
    result["max_output_difference"] = float((out - ref).abs().max())
    result["max_gradient_relative_difference"] = max(
        (float((a - b).abs().max() / b.abs().max().clamp_min(1e-12)) for a, b in zip(compiled_grads, eager_grads)),
        default=0.0)
    times = {"eager": [], "compiled": []}
    for _ in range(repeats):
        for label, fn in (("eager", model), ("compiled", compiled)):
            t0 = time.perf_counter()
            step(fn)
            times[label].append(time.perf_counter() - t0)
    result["eager_step_s"] = statistics.median(times["eager"])
    result["compiled_step_s"] = statistics.median(times["compiled"])
    result["compiled_speedup"] = result["eager_step_s"] / result["compiled_step_s"]
    return result


def _child(argv: list[str]) -> int:
    from snnlab.cpu_threads import thread_budget

    spec = json.loads(argv[0])
    with thread_budget(spec.pop("threads")):
        print(json.dumps({**check_model(spec.pop("name"), **spec), "load_average_1m": os.getloadavg()[0]}))
    return 0


def run(args: argparse.Namespace) -> dict:
    from snnlab.models import MODELS

    quick = bool(getattr(args, "quick", False))
    names = ([m.strip() for m in args.models.split(",") if m.strip()] if getattr(args, "models", None)
             else list(QUICK_MODELS if quick else sorted(MODELS)))
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; valid: {', '.join(sorted(MODELS))}.")
    backend = args.backend or ("aot_eager" if quick else "inductor")
    size = args.size or (16 if quick else 32)
    for label, value in (("T", args.T), ("batch", args.batch), ("size", size), ("repeats", args.repeats),
                         ("threads", args.threads)):
        if value < 1:
            raise ValueError(f"--{label} must be >= 1, got {value}.")
    rows = []
    started = time.time()
    for name in names:
        spec = {"name": name, "backend": backend, "T": args.T, "batch": args.batch, "size": size,
                "repeats": args.repeats, "threads": args.threads}
        cmd = [sys.executable, "-m", "snnlab.bench.compile", "--child", json.dumps(spec)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.child_timeout)
            if done.returncode == 0:
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            else:
                tail = [line for line in done.stderr.strip().splitlines() if line.strip()][-2:]
                rows.append({"model": name, "fullgraph": False, "error": " | ".join(tail)})
        except subprocess.TimeoutExpired:
            rows.append({"model": name, "fullgraph": False, "error": f"timed out after {args.child_timeout:.0f} s"})
    ok = [r for r in rows if r.get("fullgraph")]
    return {
        "backend": backend, "input": [args.T, args.batch, 3, size, size], "models": len(rows),
        "compiled_fullgraph": len(ok), "spikes_equal": sum(bool(r.get("spikes_equal")) for r in ok),
        "targets": {
            "every_model_compiles_with_fullgraph": {"value": f"{len(ok)}/{len(rows)}", "met": len(ok) == len(rows)},
            "compiled_spikes_equal_eager": {"value": f"{sum(bool(r.get('spikes_equal')) for r in ok)}/{len(rows)}",
                                            "met": len(ok) == len(rows) and all(r.get("spikes_equal") for r in ok)},
        },
        "rows": rows, "seconds": time.time() - started, "load_average_1m_end": os.getloadavg()[0],
    }


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        raise SystemExit(_child(sys.argv[2:]))
    parser = argparse.ArgumentParser(prog="python -m snnlab.bench.compile", description=__doc__.splitlines()[0])
    add_arguments(parser)
    print(json.dumps(run(parser.parse_args(sys.argv[1:])), indent=2))
