"""snnlab against an independent NumPy forward-Euler reading of NIR's equations (tests/nir_reference.py):
a graph snnlab exports, simulated from NIR's definitions at the recorded dt, fires exactly the spikes the
snnlab network fires."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch

from interop_cases import DT, drive, is_spiking, layer_cases, model_cases, randomise_batchnorm, stateful_outputs
from nir_reference import NIRReference
from snnlab.interop import to_nir
from snnlab.interop.importer import graph_dt

CASES = {**{k: v for k, v in layer_cases().items() if "Conv1d" not in repr(v[0])}, **model_cases()}


def node_for(graph: nir.NIRGraph, module_path: str) -> str:
    for candidate in (module_path, f"{module_path}.fire", f"{module_path}.LI", f"{module_path}.I"):
        if candidate in graph.nodes:
            return candidate
    raise KeyError(module_path)


@pytest.mark.parametrize("case", list(CASES))
def test_numpy_reading_of_nir_fires_the_same_spikes(case):
    model, shape = CASES[case]
    model = randomise_batchnorm(model.eval())
    graph = to_nir(model, dt=DT, input_shape=shape)
    x = drive(shape, 6, 3)
    y, layers = stateful_outputs(model, x)
    reference = NIRReference(graph, graph_dt(graph))
    ref_out, ref_nodes = reference.run(x.double().numpy())
    spiking = {name for name, m in model.named_modules() if is_spiking(m)}
    for name, out in layers.items():
        theirs = ref_nodes[node_for(graph, name)]
        if name in spiking:
            mismatched = int((out.numpy() != theirs).sum())
            assert mismatched == 0, f"{case}: {name} fires differently in {mismatched} of {out.numel()} places"
        else:
            np.testing.assert_allclose(out.numpy(), theirs, rtol=1e-4, atol=1e-4, err_msg=f"{case}: {name}")
    np.testing.assert_allclose(y.numpy(), ref_out, rtol=1e-4, atol=1e-4)


def test_reference_reads_a_soft_reset_loop_as_a_subtractive_reset():
    """The reference knows nothing of snnlab: a hand-made LI -> Threshold -> Scale loop at dt with the
    feedback weight -(1 - dt/tau)·V_th carries the overshoot above threshold into the next step."""
    tau, dt = 2e-3, 1e-3  # tau_s = 2, undecayed input: r = tau/dt
    nodes = {
        "input": nir.Input(input_type={"input": np.array([1])}),
        "li": nir.LI(tau=np.full(1, tau), r=np.full(1, tau / dt), v_leak=np.zeros(1)),
        "fire": nir.Threshold(threshold=np.ones(1)),
        "reset": nir.Scale(scale=np.full(1, -0.5)),
        "output": nir.Output(output_type={"output": np.array([1])}),
    }
    edges = [("input", "li"), ("li", "fire"), ("fire", "reset"), ("reset", "li"), ("fire", "output")]
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": dt})
    x = np.array([1.5, 0.0, 0.9, 0.0])[:, None, None]  # H: 1.5 (spike, V 0.5), 0.25, 1.025 (spike), 0.0125
    out, traces = NIRReference(graph, dt).run(x)
    assert out[:, 0, 0].tolist() == [1.0, 0.0, 1.0, 0.0]
    np.testing.assert_allclose(traces["li"][:, 0, 0], [1.5, 0.25, 1.025, 0.0125])
