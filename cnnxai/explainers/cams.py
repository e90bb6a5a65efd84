"""The 11 CAM maps themselves, fused over the requested layers and upsampled to the input frame, and the CAMs of
one image, kept in its session (:class:`~cnnxai.session.ImageSession`) for every explainer that needs them (the CAM
maps, GradLIME and CamLIME)."""

from __future__ import annotations

from collections.abc import Sequence

from cam_ext import CAM_METHODS, FULLGRAD_KEY, PRIOR_FUSIONS, CamSettings, LayerCams, compute_cams
from cnnxai.errors import UserInputError
from cnnxai.explainers.registry import Attribution, ExplainContext, register
from cnnxai.options import Option, parse_names

CAM_OPTIONS = (
    Option("layers", None, "CAM target layers by module path (several are fused); the tools pass the model's "
           "default layers", parse=parse_names, alias="layers"),
    Option("fusion", CamSettings.fusion, "fusing several layers: mean (CamLIME's pixel-level rule), max, or "
           "superpixel (the mean of per-layer priors; a CAM map then shows the pixel mean)",
           choices=PRIOR_FUSIONS, alias="fusion"),
    Option("aug_smooth", CamSettings.aug_smooth, "average the CAM over flips and brightness (grad-cam's aug_smooth)",
           alias="aug_smooth"),
    Option("eigen_smooth", CamSettings.eigen_smooth, "first principal component instead of the channel sum "
           "(grad-cam's eigen_smooth)", alias="eigen_smooth"),
)  # fmt: skip


def layers_of(context: ExplainContext) -> tuple[str, ...]:
    layers = context.option("layers")
    if not layers:
        raise UserInputError(
            f"explainer needs layers=[...] (the CAM target layers; the command lines pass the model's default "
            f"layers), got {layers!r}"
        )
    return (layers,) if isinstance(layers, str) else tuple(layers)


def cam_settings(context: ExplainContext, method: str) -> CamSettings:
    """The CAM settings of an explainer's options (``layers`` required)."""
    return context.settings(CamSettings, method=method, layers=layers_of(context))


def shared_cams(context: ExplainContext, settings: CamSettings, targets: Sequence[int]) -> LayerCams:
    """The raw CAMs of ``settings`` for ``targets`` on the context's image, computed once per session: a pass that
    covered more layers with the same method, smoothing and targets serves a subset of them (FullGrad's single
    map serves any layers: it ignores them)."""
    key = (
        settings.method,
        settings.aug_smooth,
        settings.eigen_smooth,
        tuple(int(t) for t in targets),
    )
    computed: list[tuple[tuple[str, ...], LayerCams]] = context.session.cams.setdefault(key, [])
    for requested, cams in computed:
        if set(settings.layers) <= set(requested):
            return cams if FULLGRAD_KEY in cams.maps else cams.restricted(settings.layers)
    batch = context.input_tensor.expand(len(targets), -1, -1, -1)
    # A task model that cannot be backpropagated names the model its CAMs come from (cnnxai.targets).
    model = getattr(context.model, "cam_model", None) or context.model
    cams = compute_cams(
        model, batch, list(settings.layers), method=settings.method, targets=list(targets),
        aug_smooth=settings.aug_smooth, eigen_smooth=settings.eigen_smooth, batch_size=context.forward_batch,
    )  # fmt: skip
    computed.append((settings.layers, cams))
    return cams


def cam_map(context: ExplainContext, method: str) -> Attribution:
    settings = cam_settings(context, method)
    cams = shared_cams(context, settings, [context.target])
    fused = cams.fused(settings.pixel_rule)[0].cpu().numpy().astype("float32")
    return Attribution(fused, {"layers": list(cams.layers)})


def _register_cam(method: str) -> None:
    register(
        method,
        f"{CAM_METHODS[method].description}; min-max normalised, upsampled bilinearly",
        options=CAM_OPTIONS,
    )(lambda context: cam_map(context, method))


for _method in CAM_METHODS:
    _register_cam(_method)
