"""Leave a model exactly as we found it: train/eval flags of every module, ``requires_grad`` of every parameter."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block and restore each module's own flag afterwards.

    Flags are restored per module (not with ``model.train(prev)``), so a model whose submodules were in
    mixed modes comes back unchanged. ``requires_grad`` flags are recorded and restored too, also when
    the block raises.
    """
    modes = [(module, module.training) for module in model.modules()]
    grads = [(param, param.requires_grad) for param in model.parameters()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
        for param, flag in grads:
            param.requires_grad_(flag)
