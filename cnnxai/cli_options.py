"""Command-line options shared by every entry point, each defined once: parsers, value types, option groups.

GradLIME.py / CamLIME.py (``cnnxai.cli``) and MyFaithfulness.py / MyComplexity.py (``cnnxai.benchmark.cli``)
build their parsers from these pieces, so an option means the same thing everywhere.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Container

from cam_ext import LayerNotFoundError, resolve_layers
from cnnxai.errors import ImageLoadError, UserInputError
from cnnxai.preprocess import PREPROCESSING
from cnnxai.zoo import MODELS
from lime_ext import SEGMENTERS


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad option as one line on stderr with exit status 2 (no usage dump)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see --help)\n")


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows '(default: X)' only where a default says something (not None, an off flag or an empty list) and
    the help text does not state it itself."""

    def _get_help_string(self, action: argparse.Action) -> str:
        silent = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if (
            silent or action.default == [] or "default:" in (action.help or "")
        ):  # nothing to add, or said already
            return action.help or ""
        return super()._get_help_string(action)


def int_at_least(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def batch_size_option(text: str) -> int | None:
    return None if text == "auto" else int_at_least(1)(text)


def hide_color_option(text: str):
    """'mean', a grey level 0..255, or R,G,B."""
    if text == "mean":
        return "mean"
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'mean', a number 0..255 or R,G,B, got {text!r}") from None
    if len(values) not in (1, 3) or any(not 0 <= v <= 255 for v in values):
        raise argparse.ArgumentTypeError(
            f"expected 'mean', a number 0..255 or R,G,B with each in 0..255, got {text!r}"
        )
    return values[0] if len(values) == 1 else tuple(values)


def comma_separated(text: str) -> list[str]:
    """'a, b,,a' -> ['a', 'b']: the names, each once, in order."""
    return list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))


def name_list(text: str, known: Container[str], kind: str, hint: str) -> list[str]:
    """Comma-separated names, each in ``known``, at least one; otherwise an argparse error naming the unknown
    ``kind`` (e.g. 'explainer') with ``hint`` (where to find the valid names)."""
    names = comma_separated(text)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {kind}(s) {', '.join(unknown)}; {hint}")
    if not names:
        raise argparse.ArgumentTypeError(f"expected at least one {kind} name; {hint}")
    return names


def explainer_list_option(text: str) -> list[str]:
    """Comma-separated names of registered explainers."""
    from cnnxai.explainers import REGISTRY

    return name_list(text, REGISTRY, "explainer", "list them with: python -m cnnxai.explainers --list")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--device, --model, --weights, --layers, --preprocess."""
    add = parser.add_argument
    add("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    add(
        "--model",
        default="efficientnet_lite0",
        choices=list(MODELS),
        help="black-box model (see README's model table)",
    )
    add(
        "--weights",
        default=None,
        help="weights file (state dict) for torchvision models; default: torch's cache",
    )
    add(
        "--layers",
        nargs="+",
        default=None,
        help="CAM target layer(s) by module path, e.g. layer3 layer4 (or layer3,layer4); several are fused; default: the model's own",
    )
    add(
        "--preprocess",
        default="crop",
        choices=list(PREPROCESSING),
        help="crop: resize short side 256, centre crop 224; square: the seeds' 256x256 resize, then crop",
    )


def add_lime_options(parser: argparse.ArgumentParser, num_samples_help: str) -> None:
    """--num-samples, --segmenter, --hide-color: the LIME family's neighbourhood."""
    add = parser.add_argument
    add("--num-samples", type=int_at_least(2), default=1000, help=num_samples_help)
    add(
        "--segmenter",
        default="quickshift",
        choices=list(SEGMENTERS),
        help="superpixels (quickshift = the papers' setting)",
    )
    add(
        "--hide-color",
        type=hide_color_option,
        default=0.0,
        help="colour of hidden superpixels: 0 (black), a grey level, R,G,B, or mean (per-superpixel mean)",
    )


def add_budget_options(parser: argparse.ArgumentParser) -> None:
    """--rise-masks, --ig-steps: the explainers' own budgets."""
    parser.add_argument("--rise-masks", type=int_at_least(1), default=4000, help="RISE's random masks")
    parser.add_argument(
        "--ig-steps", type=int_at_least(2), default=50, help="integration steps of ig and guided_ig_gnl"
    )


def explainer_settings(args: argparse.Namespace) -> dict:
    """The explainers' options among ``args`` (from add_lime_options and add_budget_options), by registry name."""
    names = ("num_samples", "segmenter", "hide_color", "rise_masks", "ig_steps")
    return {name: getattr(args, name) for name in names if hasattr(args, name)}


def add_run_options(parser: argparse.ArgumentParser, default_output: str, output_help: str) -> None:
    """--batch-size, --seed, --output-dir, --quiet, --debug."""
    add = parser.add_argument
    add(
        "--batch-size",
        type=batch_size_option,
        default=None,
        help="images per forward pass; default auto (CPU 8, CUDA from free memory)",
    )
    add("--seed", type=int, default=0, help="seed of every random draw (segmentation and perturbations)")
    add("--output-dir", default=default_output, help=output_help)
    add("--quiet", action="store_true", help="no progress bars")
    add("--debug", action="store_true", help="show tracebacks")


def cli_layers(model, requested: list[str] | None, model_name: str) -> list[str]:
    """The --layers value (space- or comma-separated; default: the model's own) checked against the model."""
    names = [part for item in (requested or MODELS[model_name].layers) for part in item.split(",") if part]
    try:
        return [name for name, _ in resolve_layers(model, names)]
    except LayerNotFoundError as error:
        raise UserInputError(f"--layers: {error}") from None


def run_main(
    parser: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], int],
    argv: list[str] | None,
    interrupted: str = "interrupted",
) -> int:
    """Parse, run, and turn user errors into one line on stderr with exit status 2 (tracebacks with --debug)."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help (0) or a bad option (2, already reported in one line)
        return int(stop.code or 0)
    try:
        return run(args)
    except (UserInputError, ImageLoadError) as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130
