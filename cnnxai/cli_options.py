"""Command-line options shared by every entry point, each defined once: parsers, value types, option groups.

Every tool builds its parser from these pieces, so an option means the same thing everywhere. The explainers'
settings are not written here: the shared flags (``--num-samples``, ``--rise-masks``, ...) are made from the
explainers' own declarations (:func:`add_alias_flags`), and ``--explainer-option NAME.KEY=VALUE`` reaches any
declared option.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Container, Mapping, Sequence
from pathlib import Path
from typing import Any

from cnnxai.devices import resolve_device
from cnnxai.errors import ImageLoadError, UserInputError
from cnnxai.explainers import REGISTRY
from cnnxai.options import (
    TYPE_NAMES,
    Check,
    Option,
    at_least,
    close_matches,
    parse_literal,
    positive,
    split_assignment,
)
from cnnxai.preprocess import PREPROCESSING
from cnnxai.registry import Registry
from cnnxai.registry import fill_alias as fill_alias  # the CLIs' import of it (it lives with the registry)
from cnnxai.system import tune_malloc
from cnnxai.zoo import MODEL_FORMS, ModelRequest
from lime_ext.backends import BACKENDS, BackendError, check_backend, default_backend


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


def number_option(kind: type, check: Check) -> Callable[[str], Any]:
    """An argparse ``type``: a number of ``kind`` (int or float) that passes ``check``, the checks the declared
    options use (:mod:`cnnxai.options`), so a flag and an option say the same thing about the same value."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {TYPE_NAMES[kind]}, got {text!r}") from None
        complaint = check(value)
        if complaint:
            raise argparse.ArgumentTypeError(f"{complaint}, got {text}")
        return value

    return parse


def int_at_least(minimum: int) -> Callable[[str], int]:
    return number_option(int, at_least(minimum))


def batch_size_option(text: str) -> int | None:
    return None if text == "auto" else int_at_least(1)(text)


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
    return name_list(text, REGISTRY, "explainer", REGISTRY.hint)


def model_arg_option(text: str) -> tuple[str, Any]:
    """'KEY=VALUE' -> (key, value) for ``--model-arg``; the value a Python literal (10, 0.5, True) or text."""
    try:
        _, key, value = split_assignment(text, "num_classes=10", owned=False)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return key, parse_literal(value)


def rgb_option(text: str) -> tuple[float, float, float]:
    """'R,G,B' -> three floats, for --mean and --std."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers R,G,B (e.g. 0.5,0.5,0.5), got {text!r}")
    return values  # type: ignore[return-value]


def add_model_options(parser: argparse.ArgumentParser, task_models: Sequence[str] = ()) -> None:
    """--device, --backend, --model (every form of :func:`cnnxai.zoo.load_model_spec`, docs/your-model.md) with
    --weights, --model-arg, --class-names, --input-size, --mean, --std and --offline, then --layers and
    --preprocess. ``task_models``: the detection, segmentation and face models of ``--task``, also taken by
    --model; the default is then chosen by the task. :func:`model_request` reads them back."""
    add = parser.add_argument
    add("--device", default="auto", help="auto (CUDA if available), cpu, cuda or cuda:N")
    add_backend_option(parser)
    add(
        "--model",
        default=None if task_models else "efficientnet_lite0",
        help=f"black-box model: {MODEL_FORMS} (docs/your-model.md)"
        + ("; default: efficientnet_lite0, or the --task's own model" if task_models else " (default: efficientnet_lite0)"),
    )  # fmt: skip
    add(
        "--weights",
        default=None,
        help="torchvision:NAME: DEFAULT or a weights name (IMAGENET1K_V2), downloaded to torch's cache when "
        "missing; or a state-dict file (torchvision, timm, factory and zoo models); default: the model's own",
    )
    add("--model-arg", dest="model_arg", type=model_arg_option, action="append", default=[],
        metavar="KEY=VALUE", help="an argument of the model's builder or factory (repeatable), e.g. num_classes=10")
    add("--class-names", default=None, metavar="FILE",
        help="class names, one per line; default: the weights' own (torchvision, timm), else the indices")
    add("--input-size", type=int_at_least(8), default=None, metavar="N",
        help="side of the model-input frame; default: the weights' own (299 for Inception-v3), the side a "
        "vision transformer is built for, else 224")
    add("--mean", type=rgb_option, default=None, metavar="R,G,B",
        help="input normalisation mean; default: the weights' own, else ImageNet's")
    add("--std", type=rgb_option, default=None, metavar="R,G,B",
        help="input normalisation std; default: the weights' own, else ImageNet's")
    add("--offline", action="store_true",
        help="never download weights: a file missing from the cache is an error saying where to put it")  # fmt: skip
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
        help="crop: resize the short side (256 for a 224 frame), centre crop the model's frame; square: the public "
        "scripts' 256x256 resize, then the crop",
    )


def add_backend_option(parser: argparse.ArgumentParser) -> None:
    """--backend: what runs the forward-only model passes of the whole run (:mod:`lime_ext.backends`);
    :func:`run_main` sets it as the process default around the run, so every classifier takes it."""
    parser.add_argument(
        "--backend", default="auto", type=argparse_type(check_backend), metavar="{" + ",".join(BACKENDS) + "}",
        help="what runs the perturbation forwards (gradients always run in torch): the model exported once to "
        "ONNX and run by onnxruntime or openvino (float32, checked against torch on the first input, torch "
        "when it differs by more than 1e-4 or does not export), torch itself, or auto (onnxruntime, else "
        "openvino, on a CPU when installed; torch on CUDA)",
    )  # fmt: skip


def checked_backend(args: argparse.Namespace) -> str | None:
    """The run's --backend (None for a tool without one), checked against its --device: a runtime that does not
    run there is a one-line :class:`UserInputError`, before any work."""
    backend = getattr(args, "backend", None)
    if backend is not None and getattr(args, "device", None) is not None:
        try:
            check_backend(backend, resolve_device(args.device))
        except BackendError as error:
            raise UserInputError(f"--backend {backend}: {error}") from None
    return backend


def argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type`` from a parser that raises ValueError/UserInputError: their message, one line."""

    def typed(text: str) -> Any:
        try:
            return parse(text)
        except (ValueError, UserInputError) as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    typed.__name__ = getattr(parse, "__name__", "value")
    return typed


def declared_alias(registry: Registry, alias: str) -> Option:
    """The first option of ``registry`` that answers to the shared setting ``alias``; every other one must agree
    on the default, so the flag has one default."""
    found = [option for spec in registry.values() for option in spec.options if option.alias == alias]
    if not found:
        raise KeyError(f"no {registry.kind} option answers to {alias!r}")
    defaults = {repr(option.default) for option in found}
    if len(defaults) > 1:
        raise ValueError(f"options answering to {alias!r} disagree on their default: {sorted(defaults)}")
    return found[0]


def add_alias_flags(
    parser: argparse.ArgumentParser,
    registry: Registry,
    aliases: Sequence[str],
    helps: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """``--<alias>`` flags (``num_samples`` -> ``--num-samples``) that set an option on every explainer declaring
    it, each with the declaration's default, type, choices and help (``helps`` may word the help for a tool,
    ``defaults`` give a tool its own default, e.g. SLIC superpixels on 64x64 images)."""
    helps, defaults = dict(helps or {}), dict(defaults or {})
    for alias in aliases:
        option = declared_alias(registry, alias)
        flag = "--" + alias.replace("_", "-")
        help_text = helps.get(alias, option.help)
        if option.default is False and option.parse is None:
            parser.add_argument(flag, dest=alias, action="store_true", help=help_text)
            continue
        default = option.default
        if alias in defaults:  # None: the tool chooses (e.g. by model), or leaves the explainers' own default
            default = None if defaults[alias] is None else option.validated(defaults[alias], flag)
        parser.add_argument(
            flag, dest=alias, default=default, choices=option.choices, help=help_text,
            type=argparse_type(lambda text, option=option, flag=flag: option.from_text(text, flag)),
        )  # fmt: skip


def assignment_option(example: str) -> Callable[[str], tuple[str, str, str]]:
    """An argparse ``type`` reading 'NAME.KEY=VALUE' into (name, key, value text) (:func:`split_assignment`):
    ``--explainer-option rise.masks=2000``, ``--set Deletion.step=448``; ``example`` is cited when malformed.
    The value text is read later by the named thing's declared option (:meth:`Registry.option_from_text`)."""
    return argparse_type(lambda text: split_assignment(text, example))


def add_explainer_option_flag(
    parser: argparse.ArgumentParser, what: str = "python -m cnnxai.explainers --list"
) -> None:
    """--explainer-option NAME.KEY=VALUE (repeatable): any declared option of any explainer of the run."""
    parser.add_argument(
        "--explainer-option", dest="explainer_option", type=assignment_option("rise.masks=2000"),
        action="append", default=[], metavar="NAME.KEY=VALUE",
        help=f"set an explainer's option (repeatable), e.g. rise.masks=2000; the names and options: {what}",
    )  # fmt: skip


def explainer_options(
    registry: Registry,
    methods: Sequence[str],
    args: argparse.Namespace,
    aliases: Sequence[str] = (),
    fixed: Mapping[tuple[str, str], Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """The options given to each explainer of ``methods`` (defaults are the explainer's own): the value of each
    shared flag of ``aliases`` (unless None) on every explainer declaring it, then ``fixed`` ((method, key) -> value: a tool's
    own flag, e.g. CamLIME.py's --method), then every ``--explainer-option`` of ``args``. An assignment to an
    explainer that is not in the run, or to an option it does not declare, is a one-line
    :class:`UserInputError` naming the close matches; so is a value its declaration refuses."""
    given: dict[str, dict[str, Any]] = {method: {} for method in methods}
    fixed = dict(fixed or {})
    for method in methods:
        for option in registry.lookup(method).options:
            if option.alias in aliases and getattr(args, option.alias, None) is not None:
                given[method][option.name] = getattr(args, option.alias)
            if (method, option.name) in fixed:
                given[method][option.name] = fixed[(method, option.name)]
    for name, key, text in getattr(args, "explainer_option", []):
        if name not in given:
            in_run = ", ".join(given) or "none"
            raise UserInputError(
                f"--explainer-option {name}.{key}: {name!r} is not an explainer of this run{close_matches(name, list(given))} "
                f"(this run's: {in_run})"
            )
        given[name][key] = registry.option_from_text(name, key, text, f"--explainer-option {name}.{key}")
    for method in methods:  # every value checked now, before any work
        registry.options(method, given[method])
    return given


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


def model_request(args: argparse.Namespace) -> ModelRequest:
    """The :class:`~cnnxai.zoo.ModelRequest` of the flags :func:`add_model_options` made (the default model
    when --model is not given)."""
    return ModelRequest(
        source=args.model or "efficientnet_lite0", weights=args.weights, model_args=tuple(args.model_arg),
        class_names=args.class_names, input_size=args.input_size, mean=args.mean, std=args.std,
        offline=args.offline, layers=tuple(args.layers or ()),
    )  # fmt: skip


def check_output_folder(path: str | Path) -> None:
    """Refuse an output folder that cannot be one (an existing file, or a file on its path), before any work."""
    folder = Path(path)
    for place in (folder, *folder.parents):
        if place.exists():
            if not place.is_dir():
                what = "is a file" if place == folder else f"lies under {place}, which is a file"
                raise UserInputError(f"--output-dir {folder}: {what}; name a folder")
            return


def run_main(
    parser: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace], int],
    argv: list[str] | None,
    interrupted: str = "interrupted",
) -> int:
    """Tune the process (:func:`cnnxai.system.tune_malloc`), parse, run (with the --backend of a tool that has one
    as the process's forward backend), and turn user errors into one line on stderr with exit status 2
    (tracebacks with --debug)."""
    tune_malloc()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help (0) or a bad option (2, already reported in one line)
        return int(stop.code or 0)
    try:
        if getattr(args, "output_dir", None):
            check_output_folder(args.output_dir)
        with default_backend(checked_backend(args)):
            return run(args)
    except (UserInputError, ImageLoadError) as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130


positive_float = number_option(float, positive)


def add_ray_options(parser: argparse.ArgumentParser) -> None:
    """--ray [ADDRESS] and the workers' width: run the work on a Ray cluster (docs/ray.md)."""
    group = parser.add_argument_group("Ray (an optional extra: pip install -r requirements-ray.txt)")
    add = group.add_argument
    add("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
        help="compute on Ray workers, the rows written here as they finish (same rows as one process, "
             "resumable); without ADDRESS a local Ray on this machine, else that cluster (host:port, "
             "ray://host:port or auto)")  # fmt: skip
    add("--ray-workers", type=int_at_least(1), default=None,
        help="workers; default: one per GPU with --device cuda (or auto on a cluster with GPUs), else one per "
             "--ray-cpus-per-worker CPUs of the cluster")  # fmt: skip
    add("--ray-cpus-per-worker", type=positive_float, default=1.0, help="CPUs (and torch threads) per worker")
    add("--ray-gpus-per-worker", type=positive_float, default=1.0,
        help="GPUs per worker on CUDA (0.5: two workers share a GPU)")  # fmt: skip
    add("--ray-retries", type=int_at_least(0), default=2,
        help="times a unit whose worker died is run again before its rows are written as NaN with the reason")  # fmt: skip


def add_report_options(
    parser: argparse.ArgumentParser, default_images: int, which: str = "its first K images"
) -> None:
    """--report and --report-images: the run's report.html, or only that from an existing output folder;
    ``which`` says which K images a run keeps the maps of."""
    add = parser.add_argument
    add("--report", action="store_true",
        help="compute nothing: (re)write report.html in --output-dir from the finished run's files there")  # fmt: skip
    add("--report-images", type=int_at_least(0), default=default_images, metavar="K",
        help=f"images of report.html's gallery, each beside every method's map (a run keeps in gallery/ the "
             f"maps of {which}; --report shows at most those)")  # fmt: skip


def ray_settings(args: argparse.Namespace):
    """The --ray options as :class:`~cnnxai.distributed.RaySettings` (None without --ray); checks that Ray is
    installed, before any work (the pool checks the address as it starts)."""
    if getattr(args, "ray", None) is None:
        return None
    from cnnxai.distributed import RaySettings, require_ray

    require_ray()
    return RaySettings(
        address=None if args.ray == "local" else args.ray, workers=args.ray_workers,
        cpus_per_worker=args.ray_cpus_per_worker, gpus_per_worker=args.ray_gpus_per_worker,
        retries=args.ray_retries,
    )  # fmt: skip
