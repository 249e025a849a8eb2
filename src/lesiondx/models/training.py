"""Small training-loop helpers shared by the tasks."""

from __future__ import annotations

import torch


def optimise_step(loss: torch.Tensor, optimiser: torch.optim.Optimizer, scheduler=None) -> float:
    """Back-propagate ``loss``, step the optimiser (and the per-step scheduler); return the loss value."""
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    if scheduler is not None:
        scheduler.step()
    return float(loss.detach())
