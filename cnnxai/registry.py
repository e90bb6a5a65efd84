"""One registry pattern for everything the suite looks up by name: explainers (of images and of 1-D signals),
metrics, the model zoo, the task models and the paper figures. Each entry is a frozen spec with a ``name`` and its
declared ``options`` (none for a model or a figure); lookups and option checks give one-line errors naming close
matches, and :meth:`Registry.option_from_text` is the one reader of an option given as text (``--explainer-option
NAME.KEY=VALUE``, ``--set METRIC.PARAM=VALUE``, MyStability's ``NAME[KEY=VALUE,...]``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Generic, Protocol, TypeVar

from cnnxai.errors import UserInputError
from cnnxai.options import Option, close_matches, resolve_options, unknown_option


class Named(Protocol):
    name: str
    options: tuple[Option, ...]


SpecT = TypeVar("SpecT", bound=Named)


class Registry(Mapping[str, SpecT], Generic[SpecT]):
    """Specs by name, in registration order (the order of ``--list`` and of default tables).

    ``kind`` names an entry in messages ('explainer', 'metric'); ``hint`` says where the names are listed.
    Indexing with ``[]`` is a plain mapping lookup; :meth:`lookup` is the user-facing one.
    """

    def __init__(
        self, kind: str, hint: str, case_insensitive: bool = False, specs: Iterable[SpecT] = ()
    ) -> None:
        self.kind, self.hint, self.case_insensitive = kind, hint, case_insensitive
        self._specs: dict[str, SpecT] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: SpecT) -> SpecT:
        if spec.name in self._specs:
            raise ValueError(f"{self.kind} {spec.name!r} registered twice")
        self._specs[spec.name] = spec
        return spec

    @contextmanager
    def registered(self, spec: SpecT) -> Iterator[SpecT]:
        """``spec`` registered for the block only (a test's own explainer or metric, or a stand-in for a registered
        one), and the registry as it was afterwards."""
        previous = self._specs.get(spec.name)
        self._specs[spec.name] = spec
        try:
            yield spec
        finally:
            if previous is None:
                del self._specs[spec.name]
            else:
                self._specs[spec.name] = previous

    def __getitem__(self, name: str) -> SpecT:
        return self._specs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def lookup(self, name: str) -> SpecT:
        """The spec of ``name``; an unknown name is a :class:`UserInputError` naming close matches and the hint."""
        if name in self._specs:
            return self._specs[name]
        if self.case_insensitive:
            for known, spec in self._specs.items():
                if known.lower() == str(name).lower():
                    return spec
        raise UserInputError(
            f"unknown {self.kind} {name!r}{close_matches(str(name), list(self))}; {self.hint}"
        )

    def option_from_text(self, name: str, key: str, text: str, where: str) -> Any:
        """The value of option ``key`` of ``name`` given as command-line ``text``, parsed and checked by its
        declaration (:meth:`Option.from_text`): what ``--explainer-option``, ``--set`` and a stability spec's
        brackets all read. ``where`` names the assignment in errors ('--set Deletion.step'); an unknown ``name``
        or ``key`` is a one-line :class:`UserInputError` naming the close matches."""
        try:
            spec = self.lookup(name)
        except UserInputError as error:
            raise UserInputError(f"{where}: {error}") from None
        for option in spec.options:
            if option.name == key:
                return option.from_text(text, where)
        raise unknown_option(f"{where}: {self.kind} {spec.name}", key, spec.options)

    def options(self, name: str, given: Mapping[str, Any]) -> dict[str, Any]:
        """The declared options of ``name`` with ``given`` applied and checked (see :func:`resolve_options`)."""
        spec = self.lookup(name)
        return resolve_options(f"{self.kind} {spec.name}", spec.options, given)


def listing(registry: Registry) -> str:
    """The ``--list`` text of a registry: each entry with its description (when it has one), then one line per
    declared option, ``name.option = default: help``, as ``--explainer-option`` sets it."""
    width = max(map(len, registry), default=0)
    lines = []
    for name, spec in registry.items():
        lines.append(f"{name:<{width}}  {getattr(spec, 'description', '')}".rstrip())
        for option in spec.options:
            lines.append(f"{'':<{width}}    {name}.{option.name} = {option.default!r}: {option.help}")
    return "\n".join(lines)


def takes_alias(registry: Registry, methods: Sequence[str], alias: str) -> bool:
    """Whether any of ``methods`` declares an option answering to ``alias`` (e.g. 'layers': the run needs CAM
    layers)."""
    return any(option.alias == alias for method in methods for option in registry.lookup(method).options)


def fill_alias(
    options: dict[str, dict[str, Any]], registry: Registry, alias: str, value: Any
) -> dict[str, dict[str, Any]]:
    """Set ``value`` on every explainer of ``options`` that declares an option answering to ``alias`` and was not
    given one explicitly (e.g. the model's default layers, known once the model is loaded)."""
    for method, given in options.items():
        for option in registry.lookup(method).options:
            if option.alias == alias and option.name not in given:
                given[option.name] = option.validated(value, f"{method}.{option.name}")
    return options
