"""Materialise a (small) data set as two tensors, for quick baselines such as a linear classifier."""

from __future__ import annotations

import torch

__all__ = ["dataset_arrays"]


def dataset_arrays(dataset, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack the first ``limit`` items (all by default) of a data set of ``(x, y)`` into
    ``X [N, *x.shape]`` and ``y [N]`` (int64)."""
    n = len(dataset) if limit is None else min(int(limit), len(dataset))
    if n < 1:
        raise ValueError("the data set is empty (or limit < 1): nothing to stack.")
    items = [dataset[i] for i in range(n)]
    return torch.stack([x for x, _ in items]), torch.tensor([int(y) for _, y in items], dtype=torch.int64)
