"""The kernels' thread budget: never more than torch's or Numba's thread count, one for small work."""

import numba
import pytest
import torch

from snnlab.cpu_threads import PARALLEL_MIN_WORK, kernel_thread_count, numba_threads
from snnlab.neurons import IFNode


@pytest.fixture
def restore_threads():
    torch_threads, numba_threads_before = torch.get_num_threads(), numba.get_num_threads()
    yield
    torch.set_num_threads(torch_threads)
    numba.set_num_threads(numba_threads_before)


def test_small_work_runs_on_one_thread():
    assert kernel_thread_count(PARALLEL_MIN_WORK - 1) == 1
    assert kernel_thread_count(10, min_work=11) == 1


def test_large_work_takes_the_smaller_budget(restore_threads):
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    torch.set_num_threads(1)
    assert kernel_thread_count(1 << 30) == 1
    numba.set_num_threads(1)
    torch.set_num_threads(max(1, numba.config.NUMBA_NUM_THREADS))
    assert kernel_thread_count(1 << 30) == 1
    if numba.config.NUMBA_NUM_THREADS >= 2:
        numba.set_num_threads(2)
        torch.set_num_threads(2)
        assert kernel_thread_count(1 << 30) == 2


def test_context_sets_and_restores_numba_threads(restore_threads):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs a machine where Numba may use 2 threads")
    numba.set_num_threads(2)
    torch.set_num_threads(1)
    with numba_threads(1 << 30) as n:
        assert n == 1 and numba.get_num_threads() == 1
    assert numba.get_num_threads() == 2
    with pytest.raises(RuntimeError, match="inside"):
        with numba_threads(1):
            assert numba.get_num_threads() == 1
            raise RuntimeError("inside")
    assert numba.get_num_threads() == 2


def test_neuron_kernel_respects_torch_budget(restore_threads, monkeypatch):
    """A kernel launched while torch is limited to one thread runs with Numba on one thread."""
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs a machine where Numba may use 2 threads")
    from snnlab.neurons import kernels

    seen = []
    original = kernels.spiking_forward

    def spy(*args):
        seen.append(numba.get_num_threads())
        return original(*args)

    monkeypatch.setattr(kernels, "spiking_forward", spy)
    numba.set_num_threads(2)
    x = torch.rand(8, PARALLEL_MIN_WORK)  # 8 * 2^16 neuron-steps: parallel-sized work
    torch.set_num_threads(1)
    IFNode(step_mode="m")(x)
    torch.set_num_threads(2)
    IFNode(step_mode="m")(x)
    assert seen == [1, 2]
    assert numba.get_num_threads() == 2


def test_first_kernel_keeps_torch_thread_count():
    """Numba's first use used to reset torch's OpenMP thread count to NUMBA_NUM_THREADS (fresh process)."""
    import subprocess
    import sys

    code = (
        "import torch; torch.set_num_threads(1)\n"
        "torch.nn.BatchNorm2d(8)(torch.rand(128, 8, 8, 8))\n"  # torch's OpenMP team in use first
        "from snnlab.neurons import IFNode\n"
        "IFNode(step_mode='m')(torch.rand(4, 32, 8, 8, 8))\n"
        "print(torch.get_num_threads())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "1"


def test_parallel_min_work_is_scoped():
    from snnlab import cpu_threads

    before = cpu_threads.PARALLEL_MIN_WORK
    with cpu_threads.parallel_min_work(1 << 40):
        assert kernel_thread_count(1 << 30) == 1
        assert cpu_threads.PARALLEL_MIN_WORK == 1 << 40
    assert cpu_threads.PARALLEL_MIN_WORK == before
    with pytest.raises(ValueError, match=">= 0"):
        with cpu_threads.parallel_min_work(-1):
            pass


def test_thread_budget_sets_both_and_restores(restore_threads):
    from snnlab.cpu_threads import thread_budget

    torch.set_num_threads(2)
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    before_numba = numba.get_num_threads()
    with thread_budget(1):
        assert torch.get_num_threads() == 1 and numba.get_num_threads() == 1
    assert torch.get_num_threads() == 2 and numba.get_num_threads() == before_numba
    with pytest.raises(TypeError, match="threads must be an int"):
        with thread_budget(1.5):
            pass
    with pytest.raises(ValueError, match="threads must be >= 1"):
        with thread_budget(0):
            pass


def test_thread_budget_is_capped_by_the_environment(restore_threads, monkeypatch):
    """make book runs two chapters at a time with SNNLAB_MAX_THREADS=1: a chapter asking for two
    threads then gets one (two chapters on two threads each oversubscribe the cores)."""
    from snnlab.cpu_threads import thread_budget

    torch.set_num_threads(1)
    monkeypatch.setenv("SNNLAB_MAX_THREADS", "1")
    with thread_budget(2):
        assert torch.get_num_threads() == 1 and numba.get_num_threads() == 1
    monkeypatch.delenv("SNNLAB_MAX_THREADS")
    if numba.config.NUMBA_NUM_THREADS >= 2:
        with thread_budget(2):
            assert torch.get_num_threads() == 2 and numba.get_num_threads() == 2
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("SNNLAB_MAX_THREADS", bad)
        with pytest.raises(ValueError, match="SNNLAB_MAX_THREADS must be a positive whole number"):
            with thread_budget(2):
                pass
