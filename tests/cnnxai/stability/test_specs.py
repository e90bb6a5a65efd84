"""Method specs: brackets, commas inside them, values parsed by the declarations, close-match errors, budgets."""

from __future__ import annotations

import pytest

from cnnxai.errors import UserInputError
from cnnxai.explainers import REGISTRY
from cnnxai.stability.specs import AUTO, MethodSpec, parse_spec, parse_specs, resolve_method, split_top_level


def test_commas_inside_brackets_belong_to_the_spec():
    assert split_top_level("lime, gradlime[a=1,b=2] ,kernel_shap,") == [
        "lime",
        "gradlime[a=1,b=2]",
        "kernel_shap",
    ]
    with pytest.raises(UserInputError, match="not closed"):
        split_top_level("gradlime[a=1")
    with pytest.raises(UserInputError, match="without its"):
        split_top_level("gradlime]a=1")


def test_a_spec_is_parsed_by_the_explainers_declared_options():
    spec = parse_spec("gradlime[ kernel_width=0.5, hide_color=10,20,30 ]", REGISTRY)
    assert spec == MethodSpec("gradlime[kernel_width=0.5,hide_color=10,20,30]", "gradlime",
                              {"kernel_width": 0.5, "hide_color": (10.0, 20.0, 30.0)})  # fmt: skip
    assert parse_spec("lime", REGISTRY) == MethodSpec("lime", "lime", {})
    specs = parse_specs("lime,gradlime[layers=4,cam_mode=none],lime", REGISTRY)
    assert [s.label for s in specs] == ["lime", "gradlime[layers=4,cam_mode=none]"]  # each once
    assert specs[1].given == {"layers": ("4",), "cam_mode": "none"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gradlim", "unknown explainer 'gradlim'; close matches: gradlime"),
        ("gradlime[kernel_widht=2]", "has no option 'kernel_widht'; close matches: kernel_width"),
        ("lime[kernel_width=-1]", "must be positive"),
        ("lime[num_samples=1]", "an integer of at least 2"),
        ("lime[kernel_width]", "expected KEY=VALUE"),
        ("lime[kernel_width=1,kernel_width=2]", "given twice"),
        ("lime(x)", "expected NAME or NAME"),
    ],
)
def test_bad_specs_are_one_line_errors(text, message):
    with pytest.raises(UserInputError, match=message.replace("(", r"\(").replace("[", r"\[")) as error:
        parse_specs(text, REGISTRY)
    assert "\n" not in str(error.value)


def test_budgets_come_from_the_grid_unless_the_spec_or_an_option_fixes_them():
    grid = [20, 40]
    assert resolve_method(parse_spec("lime", REGISTRY), {}, grid, REGISTRY).budgets == (20, 40)
    fixed = resolve_method(parse_spec("lime[num_samples=30]", REGISTRY), {}, grid, REGISTRY)
    assert fixed.budgets == (30,) and "num_samples" not in fixed.options
    assert fixed.options_for(30)["num_samples"] == 30
    # --explainer-option (the base) applies unless the spec sets the key
    base = {"kernel_width": 0.5, "segmenter": "slic"}
    mine = resolve_method(parse_spec("lime[kernel_width=2]", REGISTRY), base, grid, REGISTRY)
    assert mine.options["kernel_width"] == 2.0 and mine.options["segmenter"] == "slic"
    with pytest.raises(UserInputError, match="draws no samples"):
        resolve_method(parse_spec("saliency", REGISTRY), {}, grid, REGISTRY)


def test_auto_runs_once_per_seed():
    method = resolve_method(parse_spec("kernel_shap[num_samples=auto]", REGISTRY), {}, [20, 40], REGISTRY)
    assert method.auto and method.budgets == (AUTO,) and method.options_for(AUTO)["num_samples"] == AUTO
