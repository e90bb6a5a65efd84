"""Choosing the torch device from ``--device``."""

from __future__ import annotations

import torch

from cnnxai.errors import UserInputError


def resolve_device(name: str) -> torch.device:
    """'auto' (CUDA when available, else CPU), 'cpu', 'cuda' or 'cuda:N'; CUDA without a GPU is an error."""
    name = name.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UserInputError(
                f"--device {name}: CUDA is not available on this machine; use --device cpu (or auto)"
            )
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UserInputError(
                f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s); use cuda:0.."
            )
        return device
    raise UserInputError(f"--device {name}: unknown device; use auto, cpu, cuda or cuda:N")
