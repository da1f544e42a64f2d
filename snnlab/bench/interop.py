"""NIR interoperability: snnlab's networks through a NIR file and back, and through SpikingJelly 2.0.

For each network: export to a ``.nir`` file (time, bytes, nodes), import it back (time) and check
that every output is identical on random input; then, for the networks SpikingJelly's importer can
read (hard reset, no max pool, no non-spiking output layer), read the same file with SpikingJelly
(``import_from_nir(path, dt=...)``) and compare its outputs with snnlab's, and time inference of the
same graph in both (median of ``repeats``, snnlab's kernels vs SpikingJelly's imported modules,
ratio in the same run; both import the graph once, outside the timing). The reverse direction exports a SpikingJelly network and imports it in
snnlab. SpikingJelly is optional (``pip install -e ".[bench]"``); without it that part is reported as
skipped. The load average is in the machine record: compare ratios from one run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from snnlab.bench.simulator import _median_seconds

__all__ = ["add_arguments", "run", "NETWORKS"]

NETWORKS = {
    "spiking_cnn_hard_reset": ("spiking_cnn", dict(v_reset=0.0, neuron="lif", decay_input=True), (1, 8, 8), True),
    "sew_resnet18_add": ("sew_resnet18", dict(width=8, stem="small", stages=(1, 1, 1, 1)), (2, 16, 16), True),
    "ottt_vgg": ("ottt_vgg", dict(width=1 / 8), (3, 16, 16), False),
    "atsn_vgg": ("atsn_vgg", dict(), (1, 8, 8), False),
}
"""name -> (model, options, per-step input shape, readable by SpikingJelly's importer)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="fewer timesteps, samples and repeats")
    parser.add_argument("--T", type=int, default=8, help="timesteps")
    parser.add_argument("--batch", type=int, default=32, help="samples per run")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (median reported)")
    parser.add_argument("--dt", type=float, default=1e-3, help="the time step written into the graphs (s)")


def run(args: argparse.Namespace) -> dict:
    import torch

    from snnlab.interop import from_nir, to_nir
    from snnlab.interop.spikingjelly import INSTALL_HINT, import_into_spikingjelly, run_in_spikingjelly, \
        spikingjelly_version
    from snnlab.models import build_model
    from snnlab.neurons import reset_states

    quick = bool(getattr(args, "quick", False))
    T, batch, repeats = (4, 8, 2) if quick else (int(args.T), int(args.batch), int(args.repeats))
    if min(T, batch, repeats) < 1 or not args.dt > 0:
        raise ValueError("--T, --batch and --repeats must be >= 1 and --dt > 0.")
    sj = spikingjelly_version()
    result: dict = {"T": T, "batch": batch, "dt": args.dt, "spikingjelly": sj or f"not installed ({INSTALL_HINT})",
                    "networks": {}}
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        for name, (model_name, options, shape, sj_readable) in NETWORKS.items():
            model = build_model(model_name, num_classes=10, input_shape=shape, T=T, **options).eval()
            x = torch.rand(T, batch, *shape) * 2
            path = Path(folder) / f"{name}.nir"
            start = time.perf_counter()
            graph = to_nir(model, dt=args.dt, path=path)
            export_s = time.perf_counter() - start
            start = time.perf_counter()
            net = from_nir(path)
            import_s = time.perf_counter() - start
            with torch.no_grad():
                reset_states(model)
                ours = model(x)
                reset_states(net)
                back = net(x)
            row = {"nodes": len(graph.nodes), "edges": len(graph.edges), "file_bytes": path.stat().st_size,
                   "export_seconds": export_s, "import_seconds": import_s,
                   "round_trip_identical": bool(torch.equal(ours, back))}
            if sj_readable and sj is not None:
                theirs = run_in_spikingjelly(path, x, dt=args.dt)
                row["spikingjelly_identical"] = bool(torch.equal(ours, theirs))
                row["spikingjelly_max_abs_diff"] = float((ours - theirs).abs().max())

                def ours_run():
                    with torch.no_grad():
                        reset_states(net)
                        net(x)

                module = import_into_spikingjelly(path, dt=args.dt)
                ours_s = _median_seconds(ours_run, repeats)
                theirs_s = _median_seconds(lambda: run_in_spikingjelly(module, x, dt=args.dt), repeats)
                row.update(snnlab_inference_seconds=ours_s, spikingjelly_inference_seconds=theirs_s,
                           spikingjelly_over_snnlab=theirs_s / ours_s)
            elif sj_readable:
                row["spikingjelly_identical"] = "skipped: " + INSTALL_HINT
            else:
                row["spikingjelly_identical"] = ("not readable by SpikingJelly 2.0's importer (soft reset, max pool "
                                                 "or a non-spiking output: LI/I, Threshold, Scale, SumPool2d nodes)")
            result["networks"][name] = row
        if sj is not None:
            result["from_spikingjelly"] = _from_spikingjelly(Path(folder), T, batch, args.dt)
    return result


def _from_spikingjelly(folder: Path, T: int, batch: int, dt: float) -> dict:
    import torch
    from spikingjelly.activation_based import functional, layer, neuron

    from snnlab.interop import from_nir
    from snnlab.interop.spikingjelly import export_from_spikingjelly
    from snnlab.neurons import reset_states

    torch.manual_seed(1)
    net = torch.nn.Sequential(layer.Conv2d(1, 8, 3, padding=1), neuron.LIFNode(tau=2.0, v_reset=0.0),
                              layer.AvgPool2d(2), layer.Flatten(), layer.Linear(128, 10),
                              neuron.ParametricLIFNode(v_reset=0.0))
    functional.set_step_mode(net, "m")
    with torch.no_grad():  # mostly excitatory weights, so that both layers fire on [0, 3) input
        for m in net.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                m.weight.uniform_(-0.5, 1.0).mul_(1.5 / m.weight[0].numel() ** 0.5)
    x = torch.rand(T, batch, 1, 8, 8) * 3
    path = folder / "spikingjelly.nir"
    export_from_spikingjelly(net, x, dt=dt, path=path)
    with torch.no_grad():
        functional.reset_net(net)
        theirs = net(x)
        ours_net = from_nir(path, dt=dt)
        reset_states(ours_net)
        ours = ours_net(x)
    return {"network": "conv-LIF-avgpool-flatten-linear-PLIF (SpikingJelly 2.0)", "spikes": int(theirs.sum()),
            "possible_spikes": theirs.numel(), "identical_spikes": bool(torch.equal(ours, theirs))}
