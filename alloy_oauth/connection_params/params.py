"""Connection parameters as the operator declares them (``Connector.connection_params``), and
the values end users give them: each must match its parameter's pattern in full, or be one of
its choices."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext as _

#: What a parameter or metadata key may be called (it appears as ``{name}`` in URLs).
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
#: Names the authorize URL uses itself: no parameter may be called so.
RESERVED_NAMES = frozenset({
    "next", "popup", "flow", "ticket", "link", "credential", "csrfmiddlewaretoken", "metadata",
})
#: Longest parameter value accepted (a DNS name has at most 253 characters).
MAX_VALUE_LENGTH = 255


class ParameterError(ValueError):
    """A template, a value or metadata that cannot make a URL. ``name`` is the parameter (or
    ``metadata.key``) at fault, when one is; ``str()`` is a sentence for people that never
    quotes the value."""

    def __init__(self, message: str, *, name: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.name = name


class InvalidValues(ParameterError):
    """Values for a connector's parameters that cannot be used: ``errors`` maps each
    parameter's name to what is wrong with its value."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        super().__init__(" ".join(self.errors.values()), name=next(iter(self.errors), ""))


@dataclass(frozen=True)
class Param:
    """One entry of ``Connector.connection_params``."""

    name: str
    label: str
    help: str = ""
    pattern: str | None = None
    choices: tuple[str, ...] = ()

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this parameter (``None``: nothing)."""
        if not isinstance(value, str) or not value:
            return _("Enter %(label)s.") % {"label": self.label}
        if len(value) > MAX_VALUE_LENGTH or not value.isprintable() or not value.isascii():
            return _("%(label)s is not valid.") % {"label": self.label}
        if self.choices:
            if value not in self.choices:
                return _("Choose one of the values offered for %(label)s.") % {
                    "label": self.label}
        elif self.pattern is None or re.fullmatch(self.pattern, value) is None:
            return _("%(label)s is not in the expected form.") % {"label": self.label}
        return None


def declared(value: Any) -> list[Param]:
    """The parameters of a connector's ``connection_params`` JSON. An entry that is not what
    :func:`spec_problems` accepts is left out (its placeholders then count as undeclared, and
    nothing is built with them): the form refuses such entries, code may not."""
    params = []
    for item in value if isinstance(value, list) else ():
        if not spec_problems([item]):
            params.append(Param(
                name=item["name"], label=item.get("label") or item["name"],
                help=item.get("help") or "", pattern=item.get("pattern"),
                choices=tuple(item.get("choices") or ()),
            ))
    return params


def spec_problems(value: Any) -> list[str]:
    """What is wrong with a ``connection_params`` JSON value: a list of objects, each with a
    ``name`` (an identifier, not one the authorize URL uses itself, not repeated), an optional
    ``label`` and ``help`` (text), and either a ``pattern`` (a regular expression the whole
    value must match) or ``choices`` (a list of strings)."""
    if not isinstance(value, list):
        return [_('Enter a JSON list of objects, e.g. [{"name": "shop", "label": "Shop", '
                  '"pattern": "[a-z0-9][a-z0-9-]*"}].')]
    problems: list[str] = []
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, dict):
            problems.append(_("Each parameter is a JSON object."))
            continue
        name = item.get("name")
        label = name if isinstance(name, str) else "?"
        unknown = sorted(set(item) - {"name", "label", "help", "pattern", "choices"})
        if unknown:
            problems.append(_("Parameter %(name)s: unknown keys %(keys)s.") % {
                "name": label, "keys": ", ".join(map(str, unknown))})
        if not isinstance(name, str) or not NAME.fullmatch(name):
            problems.append(_("Each parameter needs a name made of letters, digits and _, "
                              "not starting with a digit."))
        elif name.lower() in RESERVED_NAMES:
            problems.append(_("Parameter %(name)s: the authorize URL uses this name itself.")
                            % {"name": name})
        elif name in seen:
            problems.append(_("Parameter %(name)s is declared twice.") % {"name": name})
        else:
            seen.add(name)
        for key in ("label", "help"):
            if key in item and not isinstance(item[key], str):
                problems.append(_("Parameter %(name)s: %(key)s is text.") % {
                    "name": label, "key": key})
        if ("pattern" in item) == ("choices" in item):
            problems.append(_("Parameter %(name)s needs either a pattern or choices.") % {
                "name": label})
        elif "pattern" in item:
            problem = pattern_problem(item["pattern"])
            if problem:
                problems.append(_("Parameter %(name)s: %(problem)s") % {
                    "name": label, "problem": problem})
        else:
            choices = item["choices"]
            if (not isinstance(choices, list) or not choices
                    or not all(isinstance(c, str) and c and len(c) <= MAX_VALUE_LENGTH
                               and c.isprintable() and c.isascii() for c in choices)
                    or len(set(choices)) != len(choices)):
                problems.append(_("Parameter %(name)s: choices is a list of different, "
                                  "non-empty strings.") % {"name": label})
    return problems


def pattern_problem(pattern: Any) -> str | None:
    """Why ``pattern`` cannot be a parameter's pattern (``None``: it can). It is matched
    against the whole value (``re.fullmatch``), so it needs no anchors. Repetition inside
    repetition, or alternatives inside repetition (``(a+)+``, ``(a|ab)*``), is refused: such
    a pattern can take exponential time on a value an end user chose."""
    if not isinstance(pattern, str) or not pattern or len(pattern) > 500:
        return _("the pattern is a regular expression of 1 to 500 characters.")
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        return _("the pattern is not a valid regular expression (%(error)s).") % {
            "error": getattr(exc, "msg", type(exc).__name__)}
    if _nested_repetition(pattern):
        return _("the pattern repeats a repetition or alternatives (such as (a+)+ or "
                 "(a|b)*), which can take exponential time; use a character class, such as "
                 "[a-z0-9.-]+.")
    return None


def _nested_repetition(pattern: str) -> bool:
    try:
        from re import _parser  # type: ignore[attr-defined]  # (Python 3.11+)
    except ImportError:  # pragma: no cover - a Python without it checks nothing here
        return False

    repeats = {_parser.MAX_REPEAT, _parser.MIN_REPEAT,
               getattr(_parser, "POSSESSIVE_REPEAT", _parser.MAX_REPEAT)}

    def walk(items: Any, inside: bool) -> bool:
        for op, av in items:
            if op in repeats:
                low, high, body = av
                repeated = high is _parser.MAXREPEAT or high > 1
                if repeated and inside:
                    return True
                if walk(body, inside or repeated):
                    return True
            elif op is _parser.BRANCH:
                if inside:
                    return True
                if any(walk(branch, inside) for branch in av[1]):
                    return True
            elif op is _parser.SUBPATTERN:
                if walk(av[-1], inside):
                    return True
            elif op in (_parser.ASSERT, _parser.ASSERT_NOT):
                if walk(av[1], inside):
                    return True
        return False

    return walk(_parser.parse(pattern), False)


def checked_values(params: Sequence[Param], raw: Mapping[str, Any],
                   names: Iterable[str] | None = None) -> dict[str, str]:
    """The values of ``params`` (of those named in ``names``, by default all) in ``raw``,
    each matching its pattern or one of its choices; raises :class:`InvalidValues` naming
    each one missing or wrong. Surrounding spaces are dropped."""
    values, errors = read_values(params, raw, names)
    if errors:
        raise InvalidValues(errors)
    return values


def read_values(params: Sequence[Param], raw: Mapping[str, Any],
                names: Iterable[str] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """``(values, errors)``: the good values of ``params`` in ``raw``, and what is wrong with
    the others (missing ones included)."""
    wanted = set(names) if names is not None else None
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    for param in params:
        if wanted is not None and param.name not in wanted:
            continue
        value = raw.get(param.name)
        value = value.strip() if isinstance(value, str) else value
        problem = param.problem(value)
        if problem:
            errors[param.name] = problem
        else:
            values[param.name] = value
    return values, errors
