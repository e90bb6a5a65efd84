"""A stand-in explainer that chooses its own number of samples (``num_samples=auto``), registered per test."""

from __future__ import annotations

import pytest

from cnnxai.explainers import REGISTRY, Attribution, explain
from cnnxai.explainers.lime_family import LIME_OPTIONS
from cnnxai.explainers.registry import ExplainerSpec
from cnnxai.options import Option

FAKE = "fake_auto"


def _budget(text: str):
    return text if text == "auto" else int(text)


OPTIONS = tuple(
    Option("num_samples", 30, "an int >= 2 or auto", parse=_budget)
    if option.name == "num_samples"
    else option
    for option in LIME_OPTIONS
)


def fake_auto_explainer(context) -> Attribution:
    """Plain lime with N = 24 + 2 * seed under 'auto' (so the forwards vary by seed), in the contract's extras."""
    options = dict(context.options)
    chosen = 24 + 2 * context.seed if options["num_samples"] == "auto" else int(options["num_samples"])
    options["num_samples"] = chosen
    result = explain("lime", context.model, context.image, context.target, seed=context.seed, device=context.device,
                     batch_size=context.batch_size, shared=context.shared, **options)  # fmt: skip
    if "superpixel_attributions" in result.extras:
        attributions, score = result.extras["superpixel_attributions"], result.extras["score"]
    else:
        label = result.extras["explanation"].labels[context.target]
        attributions, score = label.attributions, label.score
    return Attribution(
        result.map, {"superpixel_attributions": attributions, "forwards": chosen, "score": score}
    )


@pytest.fixture
def fake_auto():
    with REGISTRY.registered(
        ExplainerSpec(FAKE, fake_auto_explainer, "lime choosing N", OPTIONS, random=True)
    ):
        yield FAKE
