"""The metric registry: no import circle in cnnxai/metrics, declared parameters, the localisation metrics as
specs, the one batch loop and the perturbation kernel."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import cnnxai.metrics.perturbation as perturbation
from cnnxai.errors import UserInputError
from cnnxai.metrics import (
    COMPLEXITY_METRICS,
    FAITHFULNESS_METRICS,
    LOCALISATION_METRICS,
    METRICS,
    GroundTruth,
    ImageMetrics,
    TargetScorer,
    check_sizes,
    localisation_scores,
    metric_settings,
    metric_spec,
    resolve_settings,
)
from cnnxai.metrics.localisation import default_tolerance
from cnnxai.metrics.perturbation import FeatureView, replace
from tests.helpers import ROOT

PACKAGE = ROOT / "cnnxai" / "metrics"

# ---- no import circle ------------------------------------------------------------------------------------


def import_graph(folder: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports anywhere in its code (lazy imports included).

    ``from package import name`` imports the submodule ``name`` where there is one, else the package itself
    (its ``__init__``); a relative import is resolved against the module's package.
    """
    modules = {
        (package if path.stem == "__init__" else f"{package}.{path.stem}"): path
        for path in sorted(folder.glob("*.py"))
    }
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{parent}.{base}" if base else parent
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    for alias in node.names
                ]
            else:
                continue
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules (first = last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for child in sorted(graph[node]):
            if state.get(child) == 1:
                return path[path.index(child) :] + [child]
            if child not in state and (cycle := visit(child)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_metrics_package_has_no_import_circle():
    graph = import_graph(PACKAGE, "cnnxai.metrics")
    assert {"cnnxai.metrics.specs", "cnnxai.metrics.image", "cnnxai.metrics.localisation"} <= set(graph)
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])
    function_modules = {
        f"cnnxai.metrics.{m}" for m in ("faithfulness", "causal", "complexity", "localisation")
    }
    assert not graph["cnnxai.metrics.specs"] & function_modules
    assert not graph["cnnxai.metrics.image"] & function_modules


def test_the_cycle_check_sees_lazy_and_package_imports(tmp_path):
    """The import shapes of the circle this registry removed: a lazy import inside a function, and
    ``from package import module``."""
    (tmp_path / "__init__.py").write_text("from pkg.a import f\n")
    (tmp_path / "a.py").write_text("from pkg.b import g\n\ndef f():\n    return g()\n")
    (tmp_path / "b.py").write_text("def g():\n    from pkg import c\n    return c\n")
    (tmp_path / "c.py").write_text("from . import a\n")
    cycle = find_cycle(import_graph(tmp_path, "pkg"))
    assert cycle is not None and {"pkg.a", "pkg.b", "pkg.c"} <= set(cycle)
    (tmp_path / "c.py").write_text("import numpy\n")
    assert find_cycle(import_graph(tmp_path, "pkg")) is None


# ---- the registry and its declared parameters ------------------------------------------------------------


def test_metrics_keep_their_order_and_families():
    assert list(METRICS) == [
        "FaithfulnessCorrelation", "FaithfulnessEstimate", "MonotonicityCorrelation", "IROF", "Sufficiency",
        "RegionPerturbation", "Deletion", "Insertion", "Sparseness", "Complexity", "EffectiveComplexity",
        "PointingGame", "PointingGameExact", "RelevanceMassAccuracy", "RelevanceRankAccuracy", "TopKIntersection",
        "AUC",
    ]  # fmt: skip
    assert FAITHFULNESS_METRICS == tuple(list(METRICS)[:8])
    assert COMPLEXITY_METRICS == ("Sparseness", "Complexity", "EffectiveComplexity")
    assert LOCALISATION_METRICS == tuple(list(METRICS)[11:])
    assert all(METRICS[name].higher_is_better for name in LOCALISATION_METRICS)
    assert [name for name, spec in METRICS.items() if spec.batch_level] == ["Sufficiency"]
    assert METRICS["Deletion"].direction == "lower" and METRICS["Insertion"].direction == "higher"
    assert metric_spec("deletion") is METRICS["Deletion"]
    for spec in METRICS.values():  # every default passes its own declaration
        assert resolve_settings([spec.name])[spec.name] == spec.params
        for option in spec.options:
            assert option.validated(option.default, f"{spec.name}.{option.name}") == option.default


def test_set_errors_are_one_line_naming_the_parameter():
    metrics = ["IROF", "Deletion", "Insertion", "MonotonicityCorrelation", "EffectiveComplexity"]
    cases = {
        "IROF.n_segmnts": ("--set IROF.n_segmnts: ", "close matches: n_segments"),
        "Deletion.step": ("--set Deletion.step=0: ", "must be positive"),
        "Insertion.substrate": ("--set Insertion.substrate=noise: ", "choose one of zeros, blur, mean"),
        "MonotonicityCorrelation.baseline": (
            "--set MonotonicityCorrelation.baseline=purple: ",
            "black, white",
        ),
        "Insertion.blur_size": ("--set Insertion.blur_size=4: ", "odd"),
        "IROF.compactness": ("--set IROF.compactness=soft: ", "could not convert"),
        "Delition.step": ("--set Delition.step: unknown metric", "close matches: Deletion"),
        "EffectiveComplexity.eps": ("--set EffectiveComplexity.eps=-1.0: ", "at least 0"),
    }
    texts = {"Deletion.step": "0", "Insertion.substrate": "noise", "MonotonicityCorrelation.baseline": "purple",
             "Insertion.blur_size": "4", "IROF.compactness": "soft", "EffectiveComplexity.eps": "-1"}  # fmt: skip
    for key, (start, detail) in cases.items():
        with pytest.raises(UserInputError) as caught:
            resolve_settings(metrics, {key: texts.get(key, "1")})
        message = str(caught.value)
        assert message.startswith(start) and detail in message and "\n" not in message, message
    settings = resolve_settings(metrics, {"MonotonicityCorrelation.eps": "0", "EffectiveComplexity.eps": "0"})
    assert settings["MonotonicityCorrelation"]["eps"] == 0.0 and settings["EffectiveComplexity"]["eps"] == 0.0
    assert resolve_settings(["Insertion"], {"insertion.blur_sigma": "2"})["Insertion"]["blur_sigma"] == 2.0


def test_parameters_that_do_not_fit_the_input_are_refused():
    fits = resolve_settings(["FaithfulnessCorrelation", "FaithfulnessEstimate"],
                            {"FaithfulnessCorrelation.subset_size": "64", "FaithfulnessEstimate.features_in_step": "8"})  # fmt: skip
    check_sizes(fits, (3, 8, 8), "pixel")
    with pytest.raises(
        UserInputError, match=r"^FaithfulnessCorrelation.subset_size=65 exceeds the 64 features"
    ):
        check_sizes({"FaithfulnessCorrelation": {**fits["FaithfulnessCorrelation"], "subset_size": 65}}, (3, 8, 8), "pixel")  # fmt: skip
    check_sizes({"FaithfulnessCorrelation": {**fits["FaithfulnessCorrelation"], "subset_size": 65}}, (3, 8, 8), "element")  # fmt: skip
    with pytest.raises(
        UserInputError, match=r"^MonotonicityCorrelation.features_in_step=3136 must divide the 64"
    ):
        ImageMetrics(nn.Flatten(), torch.zeros(3, 8, 8), 0, resolve_settings(["MonotonicityCorrelation"]))


# ---- localisation metrics --------------------------------------------------------------------------------


def test_localisation_metrics_say_why_they_are_undefined():
    mask = np.zeros((8, 8), dtype=bool)
    settings = metric_settings(LOCALISATION_METRICS)
    empty = localisation_scores(np.random.default_rng(0).random((8, 8)), mask, settings)
    for name in ("RelevanceRankAccuracy", "TopKIntersection", "AUC"):
        assert math.isnan(empty[name].value) and "mask is empty" in empty[name].reason, name
    mask[2:4, 2:4] = True
    negative = localisation_scores(-np.ones((8, 8)), mask, settings)
    assert "no positive relevance" in negative["RelevanceMassAccuracy"].reason
    full = localisation_scores(np.ones((8, 8)), np.ones((8, 8), dtype=bool), settings)
    assert "whole image" in full["AUC"].reason
    broken = np.ones((8, 8))
    broken[0, 0] = np.inf
    assert all("non-finite" in r.reason for r in localisation_scores(broken, mask, settings).values())


def test_pointing_game_tolerance_defaults_to_zhangs_15_pixels_at_224_scaled():
    assert default_tolerance(224) == 15 and default_tolerance(64) == 4
    assert METRICS["PointingGame"].params == {"tolerance": None} and METRICS["TopKIntersection"].params == {
        "k": 50
    }
    mask = np.zeros((64, 64), dtype=bool)
    mask[10:20, 10:20] = True
    a = np.zeros((64, 64))
    a[10, 24] = 1.0  # 5 pixels right of the mask
    truth = GroundTruth(mask)
    pointing = METRICS["PointingGame"].fn
    assert pointing(truth, a, {"tolerance": None}).value == 0.0  # the default, 4 px at 64
    assert pointing(truth, a, {"tolerance": 5}).value == 1.0
    assert localisation_scores(
        a, mask, metric_settings(["PointingGame"], {"PointingGame": {"tolerance": 5}})
    ) == {"PointingGame": pointing(truth, a, {"tolerance": 5})}
    with pytest.raises(UserInputError, match="tolerance=-1: must be at least 0"):
        metric_settings(["PointingGame"], {"PointingGame": {"tolerance": -1}})
    with pytest.raises(UserInputError, match="has no option 'tolerance'"):
        metric_settings(["PointingGameExact"], {"PointingGameExact": {"tolerance": 1}})


def test_each_state_scores_its_own_family():
    x = torch.zeros(3, 8, 8)
    image = ImageMetrics(
        nn.Sequential(nn.Flatten(), nn.Linear(192, 2)), x, 0, resolve_settings(["Sparseness"])
    )
    assert list(image.score(np.ones((8, 8)), ["PointingGame", "Sparseness", "Sufficiency"])) == ["Sparseness"]
    with pytest.raises(ValueError, match="not a localisation metric"):
        localisation_scores(np.ones((8, 8)), np.eye(8, dtype=bool), resolve_settings(["Sparseness"]))


# ---- the batch loop and the kernel -----------------------------------------------------------------------


def test_target_scorer_runs_through_the_suites_batch_loop(monkeypatch):
    calls = []
    original = perturbation.forward_batches

    def spy(classifier, count, build, batch_size, *args, **kwargs):
        calls.append((count, batch_size))
        yield from original(classifier, count, build, batch_size, *args, **kwargs)

    monkeypatch.setattr(perturbation, "forward_batches", spy)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    scorer = TargetScorer(model, 1, batch_size=4)
    inputs = torch.randn(10, 3, 2, 2)
    logits, probabilities = scorer(10, lambda start, stop: inputs[start:stop])
    with torch.no_grad():
        expected = model(inputs)
    assert calls == [(10, 4)] and scorer.forwards == 10
    np.testing.assert_allclose(logits, expected[:, 1].double().numpy(), rtol=1e-6)
    np.testing.assert_allclose(probabilities, torch.softmax(expected, -1)[:, 1].double().numpy(), rtol=1e-6)
    assert scorer(0, lambda start, stop: inputs[start:stop])[0].shape == (0,)


def test_replace_is_bit_identical_to_where():
    """The kernel building the perturbed copies gives exactly torch.where's copies (same bits), for one fill per
    copy, one fill per feature and a substrate image."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((3, 24, 24), generator=generator) * 1.3
    view = FeatureView(x)
    masks = torch.rand((6, view.num_features), generator=generator) < 0.3
    fills = torch.randn(6, generator=generator)
    for replacement in (fills[:, None, None], torch.randn(view.num_features, generator=generator),
                        torch.randn((1, 3, view.num_features), generator=generator)):  # fmt: skip
        expected = torch.where(masks[:, None, :], replacement, view.values[None])
        got = replace(view.values, masks, replacement)
        assert got.dtype == expected.dtype and torch.equal(got.view(torch.int32), expected.view(torch.int32))
    copies = view.replace(masks, fills)
    assert copies.shape == (6, 3, 24, 24)
    assert torch.equal(copies.reshape(6, 3, -1)[0][:, masks[0]], fills[0].expand(3, int(masks[0].sum())))
