"""Figures of the adaptive-timestep chapter (ATSN): sweep heatmaps and the exit explorer."""

from __future__ import annotations

import numpy as np
import torch

from snnlab.inference.atsn import ConfidenceExit, SweepResult, confidence_levels, confidence_scores

__all__ = ["plot_sweep_heatmap", "draw_exit_explorer"]


def plot_sweep_heatmap(ax, sweep: SweepResult, field: str, *, title: str = "", cmap: str = "viridis"):
    """Heatmap of ``sweep.<field>`` ("accuracy" or "mean_steps") over (τ_CL, CL_init); returns the image."""
    values = getattr(sweep, field)
    image = ax.imshow(values, origin="lower", aspect="auto", cmap=cmap,
                      extent=(sweep.tau_cls[0], sweep.tau_cls[-1], sweep.cl_inits[0], sweep.cl_inits[-1]))
    ax.set_xlabel("τ_CL")
    ax.set_ylabel("CL_init")
    ax.set_title(title)
    ax.figure.colorbar(image, ax=ax, label="accuracy" if field == "accuracy" else "mean timesteps")
    return image


def draw_exit_explorer(fig, outputs: torch.Tensor, targets: torch.Tensor, cl_init: float, tau_cl: float,
                       reads: str = "step") -> dict[str, float]:
    """Left: each sample's confidence per step and the threshold CL_t; right: exit-step histogram.

    Returns the accuracy and mean timesteps shown (computed with :class:`ConfidenceExit`).
    """
    T = outputs.shape[0]
    rule = ConfidenceExit(cl_init, tau_cl, reads=reads)
    result = rule(outputs)
    accuracy, mean_steps = result.accuracy(targets), result.mean_steps
    scores = confidence_scores(outputs, reads).numpy()
    levels = confidence_levels(T, cl_init, tau_cl).numpy()
    ax0, ax1 = fig.subplots(1, 2)
    # 1 - confidence on a log axis: thresholds near 1 are otherwise indistinguishable
    gap = np.clip(1.0 - scores, 1e-12, None)
    rng = np.random.default_rng(0)
    for t in range(T):
        ax0.scatter(t + 1 + rng.uniform(-0.15, 0.15, gap.shape[1]), gap[t], s=4, alpha=0.3, color="C0")
    ax0.plot(np.arange(1, T + 1), 1.0 - levels, "r-o", lw=2, label="1 - CL_t (exit below the line)")
    ax0.set_yscale("log")
    ax0.set_xticks(range(1, T + 1))
    ax0.set_xlabel("timestep t")
    ax0.set_ylabel("1 - max " + ("o^t" if reads == "step" else "y_t"))
    ax0.legend(fontsize=9, loc="lower left")
    counts = np.bincount(result.steps.numpy(), minlength=T + 1)[1:]
    ax1.bar(np.arange(1, T + 1), counts, color="C2")
    ax1.set_xticks(range(1, T + 1))
    ax1.set_xlabel("exit timestep T̂")
    ax1.set_ylabel("samples")
    ax1.set_title(f"accuracy {100 * accuracy:.2f} %\nmean timesteps {mean_steps:.3f}")
    return {"accuracy": accuracy, "mean_steps": mean_steps}
