"""Method specs of MyStability.py: a registry name with options in brackets, e.g. ``gradlime[prior_strength=10]``.

The spec text is the method's label in every output. Values are parsed by the explainer's declared options
(:class:`~cnnxai.options.Option`), so a spec accepts exactly what ``--explainer-option`` does, and an unknown name
or key is a one-line :class:`~cnnxai.errors.UserInputError` naming the close matches.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cnnxai.errors import UserInputError
from cnnxai.options import split_assignment
from cnnxai.registry import Registry

AUTO = "auto"
BASELINE = "lime"  # plain lime: the reference and the baseline of forwards_to_match
SPEC = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[(.*)\])?$", re.DOTALL)


def split_top_level(text: str, what: str = "--methods") -> list[str]:
    """``text`` cut at the commas outside brackets: 'lime, a[x=1,y=2]' -> ['lime', 'a[x=1,y=2]'] (stripped, empty
    parts dropped). Unbalanced brackets are a :class:`UserInputError`."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise UserInputError(f"{what} {text!r}: a ']' without its '['")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth:
        raise UserInputError(f"{what} {text!r}: a '[' is not closed")
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def _assignments(inside: str, label: str) -> list[tuple[str, str]]:
    """'a=1,b=2,3' -> [('a', '1'), ('b', '2,3')]: a piece without '=' continues the previous value (R,G,B colours,
    layer lists); each KEY=VALUE is read by the one assignment reader (:func:`split_assignment`)."""
    texts: list[str] = []
    for piece in inside.split(","):
        if "=" in piece or not texts:
            texts.append(piece)
        else:
            texts[-1] += "," + piece
    pairs = []
    for text in texts:
        if text.strip():
            try:
                _, key, value = split_assignment(text, "gradlime[prior_strength=10]", owned=False)
            except ValueError as error:
                raise UserInputError(f"--methods {label}: {error}") from None
            pairs.append((key, value))
    return pairs


@dataclass(frozen=True)
class MethodSpec:
    """One method of a stability run: ``label`` (the spec text, as every output names it), the registry ``name``
    and the options the spec itself sets (parsed values)."""

    label: str
    name: str
    given: dict[str, Any] = field(default_factory=dict)


def parse_spec(text: str, registry: Registry) -> MethodSpec:
    """'gradlime[prior_strength=10]' -> MethodSpec; every key must be declared by the explainer."""
    label = re.sub(r"\s+", "", text)
    match = SPEC.match(label)
    if not match:
        raise UserInputError(
            f"--methods {text!r}: expected NAME or NAME[KEY=VALUE,...], e.g. gradlime[prior_strength=10]"
        )
    name, inside = match.group(1), match.group(2)
    registry.lookup(name)  # an unknown name refused even without brackets
    given: dict[str, Any] = {}
    for key, value in _assignments(inside or "", label):
        if key in given:
            raise UserInputError(f"--methods {label}: {key} is given twice; give it once")
        given[key] = registry.option_from_text(name, key, value, f"--methods {label}: {name}.{key}")
    return MethodSpec(label, name, given)


def parse_specs(text: str, registry: Registry) -> list[MethodSpec]:
    """Comma-separated specs (commas inside brackets belong to the spec), each once, at least one."""
    specs = list(
        {spec.label: spec for spec in (parse_spec(part, registry) for part in split_top_level(text))}.values()
    )
    if not specs:
        raise UserInputError("--methods: expected at least one method, e.g. lime,gradlime[prior_strength=10]")
    return specs


@dataclass(frozen=True)
class ResolvedMethod:
    """A method ready to run: ``options`` every declared option resolved (``num_samples`` set per budget),
    ``budgets`` the N of each explanation per seed (``(AUTO,)`` for a method that chooses its own)."""

    label: str
    name: str
    options: dict[str, Any]
    budgets: tuple[int | str, ...]

    @property
    def auto(self) -> bool:
        return self.budgets == (AUTO,)

    def options_for(self, budget: int | str) -> dict[str, Any]:
        return {**self.options, "num_samples": budget}


def resolve_method(
    spec: MethodSpec, base: Mapping[str, Any], grid: Sequence[int], registry: Registry
) -> ResolvedMethod:
    """``spec`` with ``base`` (the run's flags and ``--explainer-option`` for its name) under the spec's own
    options, checked by the registry. ``num_samples`` decides the budgets: 'auto' runs once, an int given by the
    spec or ``--explainer-option`` runs at that N alone, otherwise each N of ``grid``."""
    declared = {option.name for option in registry.lookup(spec.name).options}
    if "num_samples" not in declared:
        raise UserInputError(
            f"--methods {spec.label}: {spec.name} draws no samples (no num_samples option); MyStability compares "
            "the sampling explainers, e.g. lime, gradlime, camlime, baylime, kernel_shap"
        )
    given = {**base, **spec.given}
    budget = given.pop("num_samples", None)
    options = registry.options(spec.name, given)
    if budget == AUTO:
        budgets: tuple[int | str, ...] = (AUTO,)
    elif budget is not None:
        budgets = (int(budget),)
    else:
        budgets = tuple(grid)
    for value in budgets:  # every budget checked by the declaration now, before any work
        registry.options(spec.name, {**given, "num_samples": value})
    options.pop("num_samples", None)
    return ResolvedMethod(spec.label, spec.name, options, budgets)


def resolve_methods(
    specs: Sequence[MethodSpec], base: Mapping[str, Mapping[str, Any]], grid: Sequence[int], match_samples: int,
    registry: Registry,
) -> list[ResolvedMethod]:  # fmt: skip
    """Every spec resolved (see :func:`resolve_method`; ``base``: the run's given options by explainer name, lime's
    among them), plain lime at ``match_samples`` added as the baseline of forwards_to_match."""
    methods = [resolve_method(spec, base[spec.name], grid, registry) for spec in specs]
    labels = [m.label for m in methods]
    if BASELINE in labels:
        lime = methods[labels.index(BASELINE)]
        if lime.auto:
            raise UserInputError(
                "--explainer-option lime.num_samples=auto leaves no plain lime at --match-samples to compare with; "
                "write the auto variant as the spec lime[num_samples=auto]"
            )
        budgets = tuple(sorted({*lime.budgets, match_samples}))
        methods[labels.index(BASELINE)] = ResolvedMethod(lime.label, lime.name, lime.options, budgets)
    else:
        lime = resolve_method(MethodSpec(BASELINE, BASELINE), base[BASELINE], [match_samples], registry)
        methods.append(lime)
    return methods
