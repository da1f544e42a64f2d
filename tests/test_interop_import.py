"""from_nir: the time step (recorded, asked for, implied by the parameters), what it refuses, and the
imported network as an snnlab network (trainable, checkpointable, exportable again)."""

from __future__ import annotations

import io

import nir
import numpy as np
import pytest
import torch
from torch import nn

from interop_cases import DT, drive, lif, lin
from snnlab.interop import DtMismatchError, NIRNetwork, from_nir, graph_dt, read_graph, to_nir
from snnlab.neurons import IFNode, LIFNode, PLIFNode, reset_states
from snnlab.training import build_loss, build_method


def hard_net():
    torch.manual_seed(0)
    return nn.Sequential(lin(4, 6), lif(tau=2.0, decay_input=False, v_reset=0.0), lin(6, 3), IFNode(step_mode="m"))


def without_dt(graph: nir.NIRGraph) -> nir.NIRGraph:
    graph.metadata = {k: v for k, v in graph.metadata.items() if k != "dt"}
    return graph


def chain(*nodes, shape=(2,)) -> nir.NIRGraph:
    """A NIR graph written by hand (not by snnlab): input -> nodes... -> output."""
    names = [f"n{i}" for i in range(len(nodes))]
    all_nodes = {"input": nir.Input(input_type={"input": np.array(shape)}), **dict(zip(names, nodes))}
    out = nodes[-1].output_type["output"]
    all_nodes["output"] = nir.Output(output_type={"output": np.array(out)})
    edges = list(zip(["input", *names], [*names, "output"]))
    return nir.NIRGraph(nodes=all_nodes, edges=edges, metadata={})


def affine(n_in=2, n_out=2):
    return nir.Affine(weight=np.eye(n_out, n_in, dtype=np.float32), bias=np.zeros(n_out, np.float32))


# -- the time step ---------------------------------------------------------------------------------


def test_dt_defaults_to_the_graphs_own_and_a_different_one_is_refused():
    graph = to_nir(hard_net(), dt=1e-3, input_shape=(4,))
    assert graph_dt(graph) == 1e-3
    assert from_nir(graph).dt == 1e-3 and from_nir(graph, dt=1e-3).dt == 1e-3
    with pytest.raises(DtMismatchError) as info:
        from_nir(graph, dt=1e-4)  # snnTorch's importer assumes 1e-4 s
    message = str(info.value)
    assert "dt = 0.001 s" in message and "dt = 0.0001 s" in message and "Pass dt=0.001" in message


def test_graph_without_dt_needs_one_and_parameters_betray_a_wrong_one():
    graph = without_dt(to_nir(hard_net(), dt=1e-3, input_shape=(4,)))
    with pytest.raises(ValueError, match="does not record its time step"):
        from_nir(graph)
    assert from_nir(graph, dt=1e-3).dt == 1e-3
    with pytest.raises(ValueError) as info:  # the undecayed-input LIF has r = tau/dt: its dt shows
        from_nir(graph, dt=1e-4)
    assert "'1'" in str(info.value) and "tau/r = 0.001 s" in str(info.value)
    graph_if = without_dt(to_nir(nn.Sequential(nn.Linear(4, 3), IFNode(step_mode="m")), dt=1e-3, input_shape=(4,)))
    with pytest.raises(ValueError, match=r"The node was written for dt = 1/r = 0.001 s"):
        from_nir(graph_if, dt=1e-4)


def test_tau_shorter_than_dt_is_refused():
    lif_node = nir.LIF(tau=np.full(2, 5e-4), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2),
                       v_reset=np.zeros(2))
    with pytest.raises(ValueError, match=r"tau/dt = 0.5 < 1 .* smaller dt"):
        from_nir(chain(affine(), lif_node), dt=1e-3)


def test_a_graph_with_a_wrong_dt_would_silently_change_the_network():
    """Why the recorded dt is checked: a decayed-input LIF (r = 1) read at another dt is a valid, different
    network (tau_s = tau/dt changes), so the parameters alone cannot catch it."""
    graph = without_dt(to_nir(nn.Sequential(lin(4, 3), lif(tau=2.0, v_reset=0.0)), dt=1e-3, input_shape=(4,)))
    right, wrong = from_nir(graph, dt=1e-3), from_nir(graph, dt=1e-4)
    assert [m.params.tau for m in right.modules() if isinstance(m, LIFNode)] == [2.0]
    assert [m.params.tau for m in wrong.modules() if isinstance(m, LIFNode)] == [20.0]


# -- refusals ---------------------------------------------------------------------------------------


def test_refuses_nodes_snnlab_has_no_layer_for():
    cuba = nir.CubaLIF(tau_syn=np.full(2, 2e-3), tau_mem=np.full(2, 2e-3), r=np.full(2, 2.0), v_leak=np.zeros(2),
                       v_threshold=np.ones(2), v_reset=np.zeros(2))
    with pytest.raises(ValueError, match=r"'n1' \(CubaLIF\) cannot be imported: snnlab has no current-based neuron"):
        from_nir(chain(affine(), cuba), dt=1e-3)
    with pytest.raises(ValueError, match=r"'n1' \(Delay\) cannot be imported"):
        from_nir(chain(affine(), nir.Delay(delay=np.ones(2))), dt=1e-3)


def test_refuses_parameters_that_differ_between_neurons_and_foreign_leaks():
    lif_node = nir.LIF(tau=np.array([2e-3, 3e-3]), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2),
                       v_reset=np.zeros(2))
    with pytest.raises(ValueError, match=r"'n1'.*tau differs between neurons"):
        from_nir(chain(affine(), lif_node), dt=1e-3)
    lif_node = nir.LIF(tau=np.full(2, 2e-3), r=np.ones(2), v_leak=np.full(2, 0.5), v_threshold=np.ones(2),
                       v_reset=np.zeros(2))
    with pytest.raises(ValueError, match="leaks toward its reset potential"):
        from_nir(chain(affine(), lif_node), dt=1e-3)
    lif_node = nir.LIF(tau=np.full(2, 2e-3), r=np.full(2, 5.0), v_leak=np.zeros(2), v_threshold=np.ones(2),
                       v_reset=np.zeros(2))
    with pytest.raises(ValueError, match=r"r = 5 is neither 1 .* nor tau/dt = 2"):
        from_nir(chain(affine(), lif_node), dt=1e-3)


def test_refuses_a_recurrent_loop_that_is_not_a_soft_reset():
    lif_node = nir.LIF(tau=np.full(2, 2e-3), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2),
                       v_reset=np.zeros(2))
    graph = chain(affine(), lif_node)
    graph.nodes["rec"] = affine()
    graph.edges += [("n1", "rec"), ("rec", "n1")]
    with pytest.raises(ValueError, match="recurrent loop through .*'rec'.* not a soft-reset neuron"):
        from_nir(graph, dt=1e-3)


def test_refuses_a_soft_reset_loop_with_the_wrong_feedback():
    graph = to_nir(nn.Sequential(lin(4, 3), lif(tau=2.0, decay_input=False, v_reset=None)), dt=1e-3, input_shape=(4,))
    graph.nodes["1.reset"].scale = graph.nodes["1.reset"].scale * 2
    with pytest.raises(ValueError, match="feedback weight -1 is not a soft reset's .* = -0.5"):
        from_nir(graph)


def test_bad_files_and_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="no NIR file at"):
        from_nir(tmp_path / "missing.nir")
    bogus = tmp_path / "bogus.nir"
    bogus.write_text("not hdf5")
    with pytest.raises(ValueError, match="is not a NIR file"):
        from_nir(bogus)
    with pytest.raises(TypeError, match="a nir.NIRGraph, a path"):
        read_graph(42)
    net = from_nir(to_nir(hard_net(), dt=DT, input_shape=(4,)))
    with pytest.raises(ValueError, match=r"expects \[T, B, 4\]"):
        net(torch.zeros(3, 2, 5))


def test_nested_subgraphs_are_flattened():
    inner = chain(affine(), nir.IF(r=np.full(2, 1e3), v_threshold=np.ones(2), v_reset=np.zeros(2)))
    outer = chain(affine(), inner)
    net = from_nir(outer, dt=1e-3)
    assert net.order == ["n0", "n1.n0", "n1.n1"]
    assert isinstance(net.unit("n1.n1"), IFNode)
    x = torch.full((3, 1, 2), 0.6)
    with torch.no_grad():
        assert net(x)[:, 0, 0].tolist() == [0.0, 1.0, 0.0]  # V: 0.6, 1.2 -> spike, reset to 0, 0.6


# -- the imported network as an snnlab network -------------------------------------------------------


@pytest.mark.parametrize("method, loss, options", [("bptt", "tet", {}), ("ottt_a", "ottt", {"decay": 0.5})])
def test_imported_network_trains_with_snnlab_methods(method, loss, options):
    graph = to_nir(build_model_plif(), dt=DT, input_shape=(4,))
    net = from_nir(graph).train()
    plif = [m for m in net.modules() if isinstance(m, PLIFNode)]
    assert plif, "the PLIF layer should come back as a PLIF (its tau keeps learning)"
    before = [p.detach().clone() for p in net.parameters()]
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    x, y = drive((4,), 6, 8), torch.arange(8) % 3
    result = build_method(method, **options).train_step(net, x, y, build_loss(loss), optimizer)
    assert np.isfinite(result.loss)
    changed = [not torch.equal(a, b) for a, b in zip(before, net.parameters())]
    assert all(changed), f"parameters left unchanged by {method}: {changed}"


def build_model_plif():
    torch.manual_seed(1)
    node = PLIFNode(init_tau=2.0, step_mode="m", v_reset=0.0)
    return nn.Sequential(lin(4, 8), node, lin(8, 3))


def test_state_dict_carries_the_graph_and_the_network_exports_again(tmp_path):
    net = from_nir(to_nir(build_model_plif(), dt=DT, input_shape=(4,)))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01)  # "trained"
    state = net.state_dict()
    assert state["_extra_state"]["format"] == "snnlab.nir/1" and state["_extra_state"]["dt"] == DT
    buffer = io.BytesIO()
    torch.save(state, buffer)
    state = torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)
    rebuilt = from_nir(state["_extra_state"]["graph"])
    rebuilt.load_state_dict(state)
    again = from_nir(to_nir(rebuilt, dt=DT))
    assert isinstance(again, NIRNetwork)
    x = drive((4,), 6, 3)
    with torch.no_grad():
        outs = []
        for m in (net, rebuilt, again):
            reset_states(m)
            outs.append(m(x))
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])
