"""cnnxai.options, cnnxai.registry and the shared command-line pieces made from the declarations."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from cnnxai.cli_options import (
    OneLineParser,
    add_alias_flags,
    add_explainer_option_flag,
    check_output_folder,
    declared_alias,
    explainer_options,
    fill_alias,
)
from cnnxai.errors import UserInputError
from cnnxai.explainers import REGISTRY, ExplainerSpec
from cnnxai.options import Option, at_least, parse_colour, parse_names, resolve_options, settings_from
from cnnxai.registry import Registry


def test_an_option_parses_text_by_its_default_s_type_and_checks_it():
    steps = Option("steps", 50, "steps", check=at_least(2))
    assert steps.from_text("7", "ig.steps") == 7
    with pytest.raises(UserInputError, match=r"^ig.steps=x: invalid literal"):
        steps.from_text("x", "ig.steps")
    with pytest.raises(UserInputError, match="must be at least 2"):
        steps.from_text("1", "ig.steps")
    with pytest.raises(UserInputError, match="expected an integer"):
        steps.validated(2.5, "ig.steps")
    with pytest.raises(UserInputError, match="expected an integer"):
        steps.validated(True, "ig.steps")  # a bool is not a count
    assert Option("p", 0.1, "p").validated(1, "rise.p1") == 1.0  # an int is a fine float
    flag = Option("smooth", False, "smooth")
    assert flag.from_text("true", "x") is True and flag.from_text("off", "x") is False
    with pytest.raises(UserInputError, match="choose one of mean, max"):
        Option("fusion", "mean", "f", choices=("mean", "max")).validated("min", "cams.fusion")


def test_parsers_of_names_and_colours():
    assert parse_names("layer3, layer4 layer3") == ("layer3", "layer4")
    assert (
        parse_colour("mean") == "mean" and parse_colour("12") == 12.0 and parse_colour("1,2,3") == (1, 2, 3)
    )
    for bad in ("300", "1,2", "purple"):
        with pytest.raises(ValueError):
            parse_colour(bad)


def test_an_unknown_option_names_the_close_matches_and_the_known_ones():
    declared = (Option("masks", 4000, "m"), Option("cells", 8, "c"))
    with pytest.raises(UserInputError) as raised:
        resolve_options("explainer rise", declared, {"mask": 3})
    assert (
        str(raised.value)
        == "explainer rise has no option 'mask'; close matches: masks (its options: masks, cells)"
    )
    assert resolve_options("explainer rise", declared, {"cells": 4}) == {"masks": 4000, "cells": 4}


def test_settings_are_made_from_the_options_named_as_their_fields():
    @dataclass(frozen=True)
    class Settings:
        a: int = 1
        b: str = "x"

    assert settings_from(Settings, {"a": 5, "c": 0}, b="y") == Settings(5, "y")


def test_a_registry_looks_up_with_close_matches_and_registers_for_a_block_only():
    registry: Registry = Registry("thing", "see --list", case_insensitive=True)
    spec = ExplainerSpec("alpha", lambda context: None, "first")
    registry.add(spec)
    assert registry.lookup("ALPHA") is spec
    with pytest.raises(UserInputError, match="unknown thing 'alpah'; close matches: alpha; see --list"):
        registry.lookup("alpah")
    with pytest.raises(ValueError, match="registered twice"):
        registry.add(spec)
    stand_in = ExplainerSpec("alpha", lambda context: None, "stand-in")
    with registry.registered(stand_in), registry.registered(ExplainerSpec("beta", lambda c: None, "b")):
        assert registry["alpha"] is stand_in and "beta" in registry
    assert registry["alpha"] is spec and "beta" not in registry


def parser_with(aliases):
    parser = OneLineParser()
    add_alias_flags(parser, REGISTRY, aliases)
    add_explainer_option_flag(parser)
    return parser


def test_alias_flags_take_the_declared_defaults_and_types():
    args = parser_with(["num_samples", "rise_masks", "aug_smooth", "hide_color"]).parse_args([])
    assert args.num_samples == declared_alias(REGISTRY, "num_samples").default == 1000
    assert args.rise_masks == REGISTRY["rise"].options[0].default and args.aug_smooth is False
    args = parser_with(["num_samples", "hide_color"]).parse_args(
        ["--num-samples", "30", "--hide-color", "mean"]
    )
    assert (args.num_samples, args.hide_color) == (30, "mean")
    with pytest.raises(SystemExit):
        parser_with(["num_samples"]).parse_args(["--num-samples", "1"])


def test_explainer_options_set_an_alias_only_where_declared_and_explicit_values_win():
    parser = parser_with(["num_samples", "ig_steps"])
    args = parser.parse_args(["--num-samples", "30", "--ig-steps", "9", "--explainer-option", "lime.num_samples=40",
                              "--explainer-option", "rise.p1=0.5"])  # fmt: skip
    given = explainer_options(REGISTRY, ["lime", "gradlime", "ig", "guided_ig_gnl", "rise", "saliency"], args,
                              ["num_samples", "ig_steps"])  # fmt: skip
    assert given["lime"]["num_samples"] == 40 and given["gradlime"]["num_samples"] == 30
    assert given["ig"] == {"steps": 9} == given["guided_ig_gnl"]
    assert given["rise"] == {"p1": 0.5} and given["saliency"] == {}
    fill_alias(given, REGISTRY, "layers", ["layer4"])
    assert given["gradlime"]["layers"] == ["layer4"] and "layers" not in given["lime"]


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("rise.mask=3", "explainer rise has no option 'mask'; close matches: masks"),
        ("rsie.masks=3", "'rsie' is not an explainer of this run; close matches: rise"),
        ("rise.masks=many", "--explainer-option rise.masks=many: invalid literal"),
        ("rise.p1=2", "--explainer-option rise.p1=2.0: must be in (0, 1]"),
    ],
)
def test_a_bad_explainer_option_is_one_line_naming_the_problem(assignment, message):
    args = parser_with([]).parse_args(["--explainer-option", assignment])
    with pytest.raises(UserInputError) as raised:
        explainer_options(REGISTRY, ["rise", "lime"], args)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_every_form_of_an_option_of_a_named_thing_reads_the_same():
    """--explainer-option NAME.KEY=VALUE, MyStability's NAME[KEY=VALUE] and --set METRIC.PARAM=VALUE all go
    through split_assignment and Registry.option_from_text: the same value, the same refusal."""
    from cnnxai.metrics import METRICS, resolve_settings
    from cnnxai.stability.specs import parse_spec

    args = parser_with([]).parse_args(["--explainer-option", "gradlime.hide_color=10,20,30"])
    by_flag = explainer_options(REGISTRY, ["gradlime"], args)["gradlime"]["hide_color"]
    by_spec = parse_spec("gradlime[hide_color=10,20,30]", REGISTRY).given["hide_color"]
    assert by_flag == by_spec == REGISTRY.option_from_text("gradlime", "hide_color", "10,20,30", "x")
    assert by_flag == (10.0, 20.0, 30.0)
    step = resolve_settings(["Deletion"], {"deletion.step": " 448"})["Deletion"]["step"]
    assert step == METRICS.option_from_text("Deletion", "step", "448", "x") == 448
    typo = "explainer gradlime has no option 'kernel_widht'; close matches: kernel_width"
    with pytest.raises(UserInputError, match=f"^--methods gradlime\\[kernel_widht=1\\]: .*{typo}"):
        parse_spec("gradlime[kernel_widht=1]", REGISTRY)
    args = parser_with([]).parse_args(["--explainer-option", "gradlime.kernel_widht=1"])
    with pytest.raises(UserInputError, match=f"^--explainer-option gradlime.kernel_widht: {typo}"):
        explainer_options(REGISTRY, ["gradlime"], args)
    with pytest.raises(UserInputError, match="metric Deletion has no option 'stp'; close matches: step"):
        resolve_settings(["Deletion"], {"Deletion.stp": "4"})
    with pytest.raises(UserInputError, match=r"^--set: expected NAME.KEY=VALUE \(e.g. Deletion.step=448\)"):
        resolve_settings(["Deletion"], {"Deletion": "4"})


def test_the_model_zoo_task_models_and_figures_are_registries_naming_close_matches():
    from cnnxai.figures.catalog import FIGURES
    from cnnxai.tasks.models import TASK_MODELS
    from cnnxai.zoo import MODELS, load_model

    cases = [
        (MODELS, "resnet19", "resnet18"),
        (TASK_MODELS, "mtcn", "mtcnn"),
        (FIGURES, "fusion-dept", "fusion-depth"),
    ]
    for registry, typo, name in cases:
        assert isinstance(registry, Registry) and name in registry
        with pytest.raises(
            UserInputError, match=f"unknown {registry.kind} '{typo}'; close matches: [^;]*{name}"
        ):
            registry.lookup(typo)
    with pytest.raises(
        UserInputError, match="unknown model 'vgg15'; close matches: .*; choose one of: efficientnet"
    ):
        load_model("vgg15")


def test_a_malformed_explainer_option_is_a_parse_error():
    with pytest.raises(SystemExit) as stop:
        parser_with([]).parse_args(["--explainer-option", "rise.masks"])
    assert stop.value.code == 2


def test_an_output_folder_that_cannot_be_one_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    check_output_folder(tmp_path / "new" / "folder")  # fine: created later
    with pytest.raises(UserInputError, match="is a file; name a folder"):
        check_output_folder(tmp_path / "file")
    with pytest.raises(UserInputError, match="lies under .*file, which is a file"):
        check_output_folder(tmp_path / "file" / "below")
