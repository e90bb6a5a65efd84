"""Declared options: what an explainer or a metric accepts, with its default, type and meaning, written once.

An :class:`Option` is declared by the thing that reads it (an explainer of the registry, a metric of
``cnnxai.metrics``). The same declaration gives the default in Python, parses the text of a command-line
assignment (``--explainer-option rise.masks=2000``, ``--set Deletion.step=448``), checks a value, and
produces the help of ``--list``. :func:`resolve_options` refuses an unknown name with one line naming the close
matches, so a typo is an error instead of a silently ignored setting.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from cnnxai.errors import UserInputError

Parse = Callable[[str], Any]
SettingsT = TypeVar("SettingsT")
Check = Callable[[Any], str | None]  # a complaint ("must be positive"), or None when the value is fine


def parse_bool(text: str) -> bool:
    """'true'/'false' (also 1/0, yes/no, on/off), any case."""
    key = text.strip().lower()
    if key in ("true", "1", "yes", "on"):
        return True
    if key in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def parse_names(text: str) -> tuple[str, ...]:
    """'a,b' or 'a b' -> ('a', 'b'): a list of names (module paths, methods), each once, in order."""
    parts = [part for chunk in text.replace(",", " ").split() if (part := chunk.strip())]
    return tuple(dict.fromkeys(parts))


def parse_colour(text: str) -> float | tuple[float, ...] | str:
    """'mean', a grey level 0..255, or R,G,B with each in 0..255."""
    if text.strip() == "mean":
        return "mean"
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"expected 'mean', a number 0..255 or R,G,B, got {text!r}") from None
    if len(values) not in (1, 3) or any(not 0 <= v <= 255 for v in values):
        raise ValueError(f"expected 'mean', a number 0..255 or R,G,B with each in 0..255, got {text!r}")
    return values[0] if len(values) == 1 else tuple(values)


def positive(value: Any) -> str | None:
    return None if value > 0 else "must be positive"


def at_least(minimum: float) -> Check:
    def check(value: Any) -> str | None:
        return None if value >= minimum else f"must be at least {minimum}"

    return check


def probability(value: Any) -> str | None:
    return None if 0 < value <= 1 else "must be in (0, 1]"


TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "text"}


def _parser_for(default: Any) -> Parse | None:
    """The text parser implied by a default's type (bool before int: a bool is an int)."""
    if isinstance(default, bool):
        return parse_bool
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    if isinstance(default, str):
        return str
    return None


@dataclass(frozen=True)
class Option:
    """One declared option.

    ``default`` is the value when the option is not given (``None`` may mean "chosen at run time", as the model's
    own layers). ``parse`` turns command-line text into a value; by default it follows the default's type (bool,
    int, float, str). ``choices`` and ``check`` validate a value. ``alias`` names the shared command-line setting
    that sets this option on every declaring explainer (``'num_samples'`` for ``--num-samples``).
    """

    name: str
    default: Any
    help: str
    parse: Parse | None = None
    choices: tuple[Any, ...] | None = None
    check: Check | None = None
    alias: str | None = None

    def parser(self) -> Parse:
        parse = self.parse or _parser_for(self.default)
        if parse is None:
            raise TypeError(f"option {self.name!r} needs an explicit parse (its default is {self.default!r})")
        return parse

    def from_text(self, text: str, where: str) -> Any:
        """The value of command-line ``text``; ``where`` names the setting in the error ('rise.masks')."""
        try:
            value = self.parser()(text)
        except (ValueError, TypeError) as error:
            raise UserInputError(f"{where}={text}: {error}") from None
        return self.validated(value, where)

    def validated(self, value: Any, where: str) -> Any:
        """``value`` checked against the type of the default (when no explicit ``parse`` says otherwise), the choices
        and the check; ints pass for floats."""
        if value is None and self.default is None:
            return None
        expected = type(self.default) if self.parse is None and self.default is not None else None
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected in (bool, int, float, str) and not (
            isinstance(value, expected) and not (expected is int and isinstance(value, bool))
        ):
            raise UserInputError(f"{where}={value!r}: expected {TYPE_NAMES[expected]}")
        if self.choices is not None and value not in self.choices:
            raise UserInputError(f"{where}={value}: choose one of {', '.join(map(str, self.choices))}")
        if self.check is not None:
            complaint = self.check(value)
            if complaint:
                raise UserInputError(f"{where}={value}: {complaint}")
        return value


def close_matches(name: str, known: Sequence[str]) -> str:
    """'; close matches: a, b' for a mistyped ``name`` (empty when nothing is close)."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return f"; close matches: {', '.join(close)}" if close else ""


def unknown_option(owner: str, name: str, declared: Sequence[Option]) -> UserInputError:
    names = [option.name for option in declared]
    known = ", ".join(names) if names else "none"
    return UserInputError(
        f"{owner} has no option {name!r}{close_matches(name, names)} (its options: {known})"
    )


def resolve_options(owner: str, declared: Sequence[Option], given: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared option's value: the default, or the given value checked. ``owner`` names the thing in
    errors ('explainer rise'). An unknown name is a :class:`UserInputError` naming the close matches."""
    by_name = {option.name: option for option in declared}
    for name in given:
        if name not in by_name:
            raise unknown_option(owner, name, declared)
    short = owner.split()[-1]
    return {
        option.name: option.validated(given[option.name], f"{short}.{option.name}")
        if option.name in given
        else option.default
        for option in declared
    }


def split_assignment(text: str, example: str, owned: bool = True) -> tuple[str, str, str]:
    """'OWNER.KEY=VALUE' -> (owner, key, value text); with ``owned=False``, 'KEY=VALUE' -> ('', key, value text).
    A malformed text is a ValueError citing ``example``."""
    key, equals, value = text.partition("=")
    owner, dot, name = key.strip().partition(".") if owned else ("", ".", key.strip())
    if not equals or not dot or (owned and not owner) or not name or not value.strip():
        raise ValueError(f"expected {'NAME.' if owned else ''}KEY=VALUE (e.g. {example}), got {text!r}")
    return owner.strip(), name.strip(), value.strip()


def parse_literal(text: str) -> Any:
    """A Python literal ('10', '0.5', 'True', '(7, 7)', "'x'") as its value; any other text as itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def settings_from(kind: type[SettingsT], options: Mapping[str, Any], **values: Any) -> SettingsT:
    """A frozen settings object (``LimeSettings``, ``CamSettings``) from the ``options`` named as its fields,
    ``values`` overriding: one explainer context's resolved options grouped as the library call wants them."""
    names = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    return kind(**{**{name: options[name] for name in names if name in options}, **values})
