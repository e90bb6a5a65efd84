"""Forward hooks that keep raw activations on the model's device, built on pytorch-grad-cam's hook class.

pytorch-grad-cam's :class:`ActivationsAndGradients` copies activations to the CPU inside the hook
(``detach=True``) or keeps them attached (``detach=False``) and catches gradients with tensor hooks.
We extend it so that (a) activations stay on the device and in the autograd graph, keyed by layer name,
(b) an in-place operation after the layer (``ReLU(inplace=True)``) cannot overwrite what we stored: the
hook hands a clone downstream, and (c) gradients of *all* layers come from one ``torch.autograd.grad``
call, which leaves parameters' ``.grad`` untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from pytorch_grad_cam.activations_and_gradients import ActivationsAndGradients
from torch import nn


class RawActivations(ActivationsAndGradients):
    """Record the output of each target layer during a forward pass.

    Use as a context manager; hooks are removed on exit, also when the forward pass raises.
    A module called several times in one forward pass (a shared activation module) keeps its *last*
    output. ``reshape_transform`` (for ViT-like token layouts) is applied as in pytorch-grad-cam.
    """

    def __init__(
        self,
        named_layers: Sequence[tuple[str, nn.Module]],
        reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        # Not calling the parent __init__: it registers its own two hooks per layer.
        self.model = None
        self.reshape_transform = reshape_transform
        self.detach = False
        self.by_name: dict[str, torch.Tensor] = {}
        self.handles = [module.register_forward_hook(self._hook_for(name)) for name, module in named_layers]
        self.names = [name for name, _ in named_layers]

    def _hook_for(self, name: str) -> Callable:
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            if not isinstance(output, torch.Tensor):
                raise TypeError(
                    f"layer {name!r} returns {type(output).__name__}, not a tensor; pick a layer with a tensor output"
                )
            self.by_name[name] = output
            # Downstream code gets a copy, so an in-place op there cannot change the stored tensor.
            return output.clone()

        return hook

    def layer_outputs(self) -> list[torch.Tensor]:
        """Raw outputs in the order of the layers given (still in the autograd graph)."""
        missing = [name for name in self.names if name not in self.by_name]
        if missing:
            raise RuntimeError(
                f"layer(s) {missing} were not called in the forward pass; pick layers the model uses"
            )
        return [self.by_name[name] for name in self.names]

    def gradients_of(self, score: torch.Tensor, outputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """d(score)/d(output) for every recorded layer output, from one backward pass."""
        grads = torch.autograd.grad(score, list(outputs), allow_unused=True)
        return [torch.zeros_like(out) if g is None else g for out, g in zip(outputs, grads, strict=True)]

    def reshaped(self, tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Apply ``reshape_transform`` (token layouts to (B,K,h,w)); the identity when it is unset."""
        if self.reshape_transform is None:
            return list(tensors)
        return [self.reshape_transform(t) for t in tensors]

    def clear(self) -> None:
        self.by_name.clear()

    def release(self) -> None:
        self.clear()
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def __enter__(self) -> RawActivations:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()  # never swallows the exception (unlike BaseCAM.__exit__)


def forward_with_hooks(
    model: nn.Module, x: torch.Tensor, hooks: Sequence[tuple[nn.Module, Callable]]
) -> None:
    """One no-grad forward pass of ``model`` on ``x`` with temporary forward hooks (removed also on error)."""
    handles = [module.register_forward_hook(hook) for module, hook in hooks]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
