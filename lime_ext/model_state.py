"""Leave a model exactly as we found it (train/eval flags of every module, ``requires_grad`` of every parameter),
find where it lives, and compute in full float32 around it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import torch
from torch import nn


@contextmanager
def module_mode(model: nn.Module, training: bool) -> Iterator[nn.Module]:
    """Put ``model`` in train (``training``) or eval mode for the block and restore each module's own flag
    afterwards.

    Flags are restored per module (not with ``model.train(prev)``), so a model whose submodules were in
    mixed modes comes back unchanged. ``requires_grad`` flags are recorded and restored too, also when
    the block raises.
    """
    modes = [(module, module.training) for module in model.modules()]
    grads = [(param, param.requires_grad) for param in model.parameters()]
    model.train(training)
    try:
        yield model
    finally:
        for module, flag in modes:
            module.training = flag
        for param, flag in grads:
            param.requires_grad_(flag)


def evaluation_mode(model: nn.Module) -> AbstractContextManager[nn.Module]:
    """``model`` in eval mode for the block, every module's mode and ``requires_grad`` restored after."""
    return module_mode(model, False)


def training_mode(model: nn.Module) -> AbstractContextManager[nn.Module]:
    """``model`` in train mode for the block (a training loop), every module's mode restored after."""
    return module_mode(model, True)


def module_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (else its first buffer; a model with neither: the CPU). Tensors
    a wrapper makes for the model are made there, so they meet the model's own on one device."""
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextmanager
def full_float32(enabled: bool = True) -> Iterator[None]:
    """Full float32 convolutions and matrix products on CUDA for the block, the caller's flags restored after.

    PyTorch lets cuDNN convolve in TF32 by default, whose 10-bit mantissa moves logits by about 1e-3 on
    ImageNet CNNs: as much as removing 224 pixels changes them, which is what the faithfulness metrics measure.
    Every tool of the suite computes in full float32 unless asked otherwise (``tf32=True``), so one map is the
    same whichever tool made it. A no-op on the CPU (the flags only concern CUDA kernels).
    """
    if not enabled:
        yield
        return
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags


@contextmanager
def seeded_torch(seed: int, device: torch.device | str | None = None) -> Iterator[None]:
    """Torch's global generators seeded with ``seed`` for the block, and the caller's states restored after: the
    CPU's, and the generator of ``device`` when it is a CUDA device (for libraries that draw from torch's global
    generators on the model's device, e.g. captum's noise). No other device's generator is touched:
    ``torch.manual_seed`` would reseed every CUDA generator (or queue it for when CUDA starts), and a fork of the
    CPU generator alone would leave them reseeded."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    cuda = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else []
    )
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(int(seed))
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(int(seed))
        yield
