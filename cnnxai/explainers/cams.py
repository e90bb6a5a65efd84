"""The 11 CAM maps themselves, fused over the requested layers and upsampled to the input frame."""

from __future__ import annotations

from cam_ext import CAM_METHODS, compute_cams
from cnnxai.errors import UserInputError
from cnnxai.explainers.registry import Attribution, ExplainContext, register


def layers_of(context: ExplainContext) -> list[str]:
    layers = context.option("layers")
    if not layers:
        raise UserInputError(
            "CAM-based explainers need layers=[...] (the command line passes the model's default layers)"
        )
    return list(layers)


def cam_map(context: ExplainContext, method: str) -> Attribution:
    cams = compute_cams(
        context.model, context.input_tensor, layers_of(context), method=method, targets=context.target,
        aug_smooth=bool(context.option("aug_smooth", False)), eigen_smooth=bool(context.option("eigen_smooth", False)),
        batch_size=context.forward_batch,
    )  # fmt: skip
    rule = "max" if context.option("fusion") == "max" else "mean"
    fused = cams.fused(rule)[0].cpu().numpy().astype("float32")
    return Attribution(fused, {"layers": list(cams.layers)})


def _register_cam(method: str) -> None:
    register(method, f"{CAM_METHODS[method].description}; min-max normalised, upsampled bilinearly")(
        lambda context: cam_map(context, method)
    )


for _method in CAM_METHODS:
    _register_cam(_method)
