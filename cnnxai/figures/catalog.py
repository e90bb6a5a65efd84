"""The figures of the GradLIME and CamLIME papers and of their public repositories' scripts, one function each,
drawn from the library's own explainers: ``FIGURES[name].draw(run) -> matplotlib Figure`` for a typed
:class:`~cnnxai.figures.context.FigureRun` (docs/figures.md).

Fixed on the way: the weight-feature curves of each row are that row's (CAM_LIME_w_f2 plotted the last mode's
weights in every row), overlays are drawn on the model-input frame the map was computed on (the public scripts laid the
CAM over the uncropped image), and LIME panels are the attributions of the same neighbourhood as ours.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.gridspec import GridSpec
from skimage.segmentation import mark_boundaries

from cnnxai.errors import UserInputError
from cnnxai.figures.context import FigureContext, FigureRun
from cnnxai.figures.panels import (
    CAM_NAMES,
    TITLE,
    blank,
    cam_name,
    cam_panel,
    colorbar,
    grid,
    image_panel,
    overlay_panel,
    segment_ids,
    signed_panel,
    superpixels_panel,
    values_as_explanation,
)
from cnnxai.metrics import ImageMetrics, resolve_settings
from cnnxai.options import Option
from cnnxai.registry import Registry
from lime_ext import hidden_image

SEVEN_CAM_MODES = ("gradcam", "hirescam", "gradcam++", "ablationcam", "xgradcam", "eigencam", "layercam")
COMPARED = ("ig", "gradient_shap", "occlusion", "gradcam", "lime", "rise", "guided_ig_gnl")
CURVE_METHODS = ("gradlime", "lime", "gradcam", "ig", "rise", "guided_ig_gnl", "saliency")
PADDLEX_THRESHOLDS = (0.6, 0.7, 0.75, 0.8, 0.85)


@dataclass(frozen=True)
class FigureSpec:
    name: str
    description: str
    draw: Callable
    methods: str  # what --methods lists for this figure: 'cam' (CAM modes), 'explainers' or '' (unused)
    default_methods: tuple[str, ...] = ()
    options: tuple[Option, ...] = ()  # none: a figure's settings are Figures.py's flags (FigureSettings)
    # '' for a figure of a classifier, drawn by draw(run: FigureRun); else the task whose target an application
    # figure explains (cnnxai.figures.applications), drawn by draw(explained, task, title, others)
    task: str = ""


FIGURES: Registry[FigureSpec] = Registry("figure", "list them with: python Figures.py --list")


def figure(name: str, description: str, methods: str = "", default_methods: tuple[str, ...] = (), task: str = ""):
    """Register the decorated ``draw`` as figure ``name`` (see :class:`FigureSpec`); the function is returned
    unchanged."""

    def register(draw: Callable) -> Callable:
        FIGURES.add(FigureSpec(name, description, draw, methods, default_methods, task=task))
        return draw

    return register


EXPLAINER_NAMES = {
    "lime": "LIME", "gradlime": "Ours (GradLIME)", "camlime": "CamLIME", "ig": "IG", "gradient_shap": "GradientSHAP",
    "occlusion": "Occlusion", "rise": "RISE", "guided_ig_gnl": "IG with GNL", "saliency": "Saliency",
    "kernel_shap": "KernelSHAP", "lrp": "LRP", "sise": "SISE", "input_x_gradient": "Input x Gradient",
}  # fmt: skip


def explainer_name(name: str) -> str:
    return EXPLAINER_NAMES.get(name, CAM_NAMES.get(name, name))


@figure(
    "models",
    "several black-box models x [Original, Activation, LIME, ours]; models without weights are skipped",
)
def models(run: FigureRun) -> Figure:
    rows = []
    for name in run.settings.models:
        context = run.context_for_model(name)
        if context is not None:
            rows.append(context)
    if not rows:
        raise UserInputError(
            "no model of --models has its weights here; see the messages above for how to get them"
        )
    method = run.settings.method or "gradcam"
    features = run.settings.num_features
    fig, axes = grid(len(rows), 4)
    for row, ctx in zip(axes, rows, strict=True):
        image_panel(row[0], ctx.frame, f"Original\n{ctx.model_name}: {ctx.class_names[ctx.target]}")
        shown = cam_panel(row[1], ctx.activation(method), f"Activation ({cam_name(method)})", raw=True)
        superpixels_panel(row[2], ctx.lime(), ctx.target, features, "LIME")
        superpixels_panel(row[3], ctx.ours(method), ctx.target, features, "Ours")
    colorbar(fig, shown, axes.ravel().tolist(), "activation / max")
    return fig


def _layer_row(
    row, ctx: FigureContext, layers: list[str], method: str, num_features: int, fused: bool = True
):
    """[Original, (CAM_l, CamLIME_l) for each layer, (fused CAM, CamLIME_fused)] on one row; the last map shown."""
    ctx.cams(layers, method)  # one pass for all layers; the per-layer panels reuse its maps
    image_panel(row[0], ctx.frame, f"Original\n{ctx.class_names[ctx.target]}")
    chosen = [[layer] for layer in layers] + ([list(layers)] if fused else [])
    titles = list(layers) + (["fused"] if fused else [])
    shown = None
    for k, (these, title) in enumerate(zip(chosen, titles, strict=True)):
        shown = cam_panel(row[1 + 2 * k], ctx.cam_map(method, these), f"{cam_name(method)}\n{title}")
        superpixels_panel(
            row[2 + 2 * k], ctx.ours(method, these), ctx.target, num_features, f"CamLIME\n{title}"
        )
    return shown


@figure(
    "layers",
    "per-layer CAM and CamLIME, plus the fused map (CAM_LIME_fues_act.py; --method, default layercam)",
)
def layers(run: FigureRun) -> Figure:
    ctx = run.context
    chosen = run.multi_layers(ctx)
    fig, axes = grid(1, 1 + 2 * (len(chosen) + 1))
    shown = _layer_row(axes[0], ctx, chosen, run.settings.method or "layercam", run.settings.num_features)
    colorbar(fig, shown, axes.ravel().tolist(), "CAM (min-max)")
    return fig


@figure("fusion-depth", "fusing the first 2, 3, ... layers, one row each (CAM_LIME_fues_act2.py)")
def fusion_depth(run: FigureRun) -> Figure:
    ctx = run.context
    chosen = run.multi_layers(ctx)
    if len(chosen) < 2:
        raise UserInputError("fusion-depth needs at least two layers; pass several with --layers")
    depths = range(2, len(chosen) + 1)
    fig, axes = grid(len(depths), 1 + 2 * (len(chosen) + 1))
    shown = None
    for row, depth in zip(axes, depths, strict=True):
        shown = _layer_row(
            row, ctx, chosen[:depth], run.settings.method or "layercam", run.settings.num_features
        )
        row[0].set_title(f"Original\nS{depth}: {depth} layers", fontsize=TITLE)
        for axis in row[1 + 2 * (depth + 1) :]:
            blank(axis)
    colorbar(fig, shown, axes.ravel().tolist(), "CAM (min-max)")
    return fig


@figure(
    "cam-methods",
    "the CAM modes x [Original, LIME, Activation, Mapping, ours] (my_difact.py)",
    "cam",
    SEVEN_CAM_MODES,
)
def cam_methods(run: FigureRun) -> Figure:
    ctx = run.context
    lime = ctx.lime()
    features = run.settings.num_features
    fig, axes = grid(len(run.settings.methods), 5)
    shown = None
    for row, method in zip(axes, run.settings.methods, strict=True):
        image_panel(row[0], ctx.frame, f"Original\n{ctx.class_names[ctx.target]}")
        superpixels_panel(row[1], lime, ctx.target, features, "LIME")
        shown = cam_panel(row[2], ctx.activation(method), f"Activation: {cam_name(method)}", raw=True)
        overlay_panel(row[3], ctx.frame, ctx.cam_map(method), "Mapping")
        superpixels_panel(row[4], ctx.ours(method), ctx.target, features, f"Ours ({cam_name(method)})")
    colorbar(fig, shown, axes.ravel().tolist(), "activation (raw / max; mapping: min-max)")
    return fig


@figure(
    "cam-methods-layers",
    "the CAM modes x layers: CAM and CamLIME per layer (my_difact_diflayer.py)",
    "cam",
    SEVEN_CAM_MODES,
)
def cam_methods_layers(run: FigureRun) -> Figure:
    ctx = run.context
    chosen = run.multi_layers(ctx)
    fig, axes = grid(len(run.settings.methods), 1 + 2 * len(chosen))
    shown = None
    for row, method in zip(axes, run.settings.methods, strict=True):
        shown = _layer_row(row, ctx, chosen, method, run.settings.num_features, fused=False)
    colorbar(fig, shown, axes.ravel().tolist(), "CAM (min-max)")
    return fig


@figure("weight-feature", "LIME and ours with superpixel ids, and weight by superpixel (GradLIME_w_f.py; several --methods: CAM_LIME_w_f2.py, each row its own curve)", "cam", ("gradcam",))  # fmt: skip
def weight_feature(run: FigureRun) -> Figure:
    ctx = run.context
    lime = ctx.lime()
    features = run.settings.num_features
    fig, axes = grid(len(run.settings.methods), 4, cell=2.6)
    segments = ctx.neighbourhood.segments
    for row, method in zip(axes, run.settings.methods, strict=True):
        ours = ctx.ours(method)
        image_panel(row[0], mark_boundaries(ctx.frame, segments), "Superpixels")
        segment_ids(row[0], segments)
        superpixels_panel(row[1], lime, ctx.target, features, "LIME", ids=True)
        superpixels_panel(row[2], ours, ctx.target, features, f"Ours ({cam_name(method)})", ids=True)
        curve = row[3]
        curve.set_axis_on()
        ids = np.arange(ours.num_segments)
        curve.plot(ids, lime.labels[ctx.target].attributions, lw=1, label="LIME")
        curve.plot(ids, ours.labels[ctx.target].attributions, lw=1, label=f"Ours ({cam_name(method)})")
        curve.axhline(0, color="black", lw=0.4)
        curve.set_xlabel("superpixel id", fontsize=7)
        curve.set_ylabel("attribution", fontsize=7)
        curve.tick_params(labelsize=6)
        curve.legend(fontsize=6)
        curve.set_title("Weight by superpixel", fontsize=TITLE)
    return fig


@figure("compare", "ours beside IG, GradientSHAP, Occlusion, Grad-CAM, LIME, RISE and guided_ig_gnl (my_difExp_vis.py)", "explainers", COMPARED)  # fmt: skip
def compare(run: FigureRun) -> Figure:
    ctx = run.context
    names = [*run.settings.methods, "gradlime"]
    columns = min(5, 1 + len(names))  # two rows rather than one too wide for a page
    fig, axes = grid(-(-(1 + len(names)) // columns), columns, cell=2.4)
    cells = axes.ravel()
    image_panel(cells[0], ctx.frame, f"Original\n{ctx.class_names[ctx.target]}")
    for axis in cells[1 + len(names) :]:
        blank(axis)
    for axis, name in zip(cells[1 : 1 + len(names)], names, strict=True):
        attribution = ctx.explain(name).map
        title = explainer_name(name)
        if name in CAM_NAMES:
            shown = overlay_panel(axis, ctx.frame, attribution, title)
            colorbar(fig, shown, axis)
        else:
            colorbar(fig, signed_panel(axis, attribution, title), axis)
    return fig


@figure(
    "rgb",
    "attribution per colour channel: LIME and ours hiding one channel at a time (Quantus_CamLime_test.py)",
)
def rgb(run: FigureRun) -> Figure:
    ctx = run.context
    fig, axes = grid(3, 4)
    method, features = run.settings.method or "gradcam", run.settings.num_features
    lime, ours = ctx.lime(), ctx.ours(method)
    image_panel(axes[0, 0], ctx.frame, f"Original\n{ctx.class_names[ctx.target]}")
    overlay_panel(axes[0, 1], ctx.frame, ctx.cam_map(method), cam_name(method))
    superpixels_panel(axes[0, 2], lime, ctx.target, features, "LIME")
    superpixels_panel(axes[0, 3], ours, ctx.target, features, "Ours")
    maps = {"LIME": [lime.attribution_map(ctx.target)], "Ours": [ours.attribution_map(ctx.target)]}
    hide = hidden_image(ctx.frame, ctx.neighbourhood.segments, ctx.lime_settings.hide_color)
    for channel in range(3):
        hidden = ctx.frame.copy()
        hidden[..., channel] = hide[..., channel]  # only this channel of an off superpixel is hidden
        found = run.channel_neighbourhood(ctx, hidden)
        maps["LIME"].append(found.fit(labels=[ctx.target], cam_mode="none").attribution_map(ctx.target))
        prior = ours.labels[ctx.target].prior
        maps["Ours"].append(
            found.fit(labels=[ctx.target], prior=prior, cam_mode="feature").attribution_map(ctx.target)
        )
    limit = max(float(np.abs(m).max()) for series in maps.values() for m in series) or 1.0
    for row, (name, series) in zip(axes[1:], maps.items(), strict=True):
        for axis, attribution, title in zip(
            row, series, ["all channels", "R only", "G only", "B only"], strict=True
        ):
            shown = signed_panel(axis, attribution, f"{name}: {title}", limit=limit)
    colorbar(fig, shown, axes.ravel().tolist(), "attribution (change of p)")
    return fig


@figure("deletion-insertion", "deletion and insertion curves of several methods on one image (RISE's protocol)", "explainers", CURVE_METHODS)  # fmt: skip
def deletion_insertion(run: FigureRun) -> Figure:
    ctx = run.context
    names = list(run.settings.methods)
    step = str(run.settings.curve_step)
    settings = resolve_settings(["Deletion", "Insertion"], {"Deletion.step": step, "Insertion.step": step})
    metrics = ImageMetrics.of(ctx.session, ctx.target, settings, seed=ctx.seed, key=run.image_key)
    columns = max(2, len(names))  # the two curve panels need two columns even for one method
    fig = Figure(figsize=(max(2.0 * columns, 9.0), 6.4), constrained_layout=True)
    layout = GridSpec(2, columns, figure=fig, height_ratios=[1, 1.6])
    curves = {}
    for k, name in enumerate(names):
        attribution = ctx.explain(name).map
        axis = fig.add_subplot(layout[0, k])
        axis.set_label("panel")
        axis.set_axis_off()
        signed_panel(axis, attribution, explainer_name(name))
        curves[name] = metrics.score(attribution, ["Deletion", "Insertion"])
    for column, kind in enumerate(("Deletion", "Insertion")):
        half = columns // 2
        axis = fig.add_subplot(layout[1, :half] if column == 0 else layout[1, half:])
        axis.set_label("panel")
        for name, results in curves.items():
            result = results[kind]
            if result.curve is None:
                continue
            axis.plot(
                np.linspace(0, 1, len(result.curve)),
                result.curve,
                lw=1.1,
                label=f"{explainer_name(name)} ({result.value:.3f})",
            )
        better = "lower" if kind == "Deletion" else "higher"
        axis.set_title(f"{kind}: area in legend, {better} is better", fontsize=TITLE + 1)
        axis.set_xlabel(f"fraction of pixels {'deleted' if kind == 'Deletion' else 'inserted'}", fontsize=7)
        axis.set_ylabel(f"p({ctx.class_names[ctx.target]})", fontsize=7)
        axis.tick_params(labelsize=6)
        axis.legend(fontsize=6)
    return fig


def auto_choose_num_features(weights: np.ndarray, segments: np.ndarray, threshold: float) -> int:
    """PaddleX's choice of how many superpixels to show: positive weights, L1-normalised, walked from the largest,
    skipping superpixels smaller than 1/8 of the mean superpixel, until their share passes ``threshold``;
    retried with threshold - 0.1 when none qualifies; 5 once the threshold reaches 0."""
    sizes = np.bincount(segments.ravel(), minlength=len(weights))
    small = segments.size / len(weights) / 8
    positive = np.where(weights > 0, weights, 0.0)
    total = positive.sum()
    while threshold > 0:
        if total > 0:
            share, count = 0.0, 0
            for j in np.argsort(-positive, kind="stable"):
                if positive[j] <= 0:
                    break
                if sizes[j] < small:
                    continue
                share += positive[j] / total
                count += 1
                if share > threshold:
                    return count
        threshold -= 0.1
    return 5


@figure(
    "normlime", "PaddleX's NormLIME layout: image, superpixels, LIME at five thresholds, NormLIME, combined"
)
def normlime(run: FigureRun) -> Figure:
    ctx = run.context
    lime = ctx.lime()
    weights = lime.labels[ctx.target].weights
    extras = ctx.explain("normlime").extras
    global_weight = extras["global_weight"]
    fig, axes = grid(4, 5)
    image_panel(axes[0, 0], ctx.frame, f"label {ctx.target_title}")
    image_panel(axes[0, 1], mark_boundaries(ctx.frame, ctx.neighbourhood.segments), "superpixels")
    for axis in axes[0, 2:]:
        blank(axis)
    rows = {
        "LIME": lime,
        "NormLIME": values_as_explanation(lime, ctx.target, global_weight),
        "Combined": values_as_explanation(lime, ctx.target, weights * global_weight),
    }
    for k, threshold in enumerate(PADDLEX_THRESHOLDS):
        count = auto_choose_num_features(weights, ctx.neighbourhood.segments, threshold)
        for r, (name, explanation) in enumerate(rows.items(), start=1):
            superpixels_panel(axes[r, k], explanation, ctx.target, count, f"{name}, {threshold:.2f}: {count}")
    return fig


@figure(
    "neighbourhood", "a grid of LIME's perturbed samples with the model's p(target) (show_neighborhood_img)"
)
def neighbourhood(run: FigureRun) -> Figure:
    ctx = run.context
    found = ctx.neighbourhood
    count = min(run.settings.samples, len(found.masks))
    columns = min(4, count)
    fig, axes = grid(-(-count // columns), columns)
    hidden = hidden_image(ctx.frame, found.segments, ctx.lime_settings.hide_color)
    for i, axis in enumerate(axes.ravel()):
        if i >= count:
            blank(axis)
            continue
        keep = found.masks[i][found.segments].astype(bool)
        shown = np.where(keep[..., None], ctx.frame, hidden)
        name = "the image" if i == 0 else f"sample {i}"
        image_panel(
            axis,
            shown,
            f"{name}: {int(found.masks[i].sum())}/{found.num_segments} on\np = {found.predictions[i, ctx.target]:.3f}",
        )
    return fig
