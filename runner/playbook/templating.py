"""The one Jinja2 factory: sandboxed, undefined is an error, `strftime` filter."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import jinja2
import jinja2.meta
from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from runner.core.errors import PlaybookError
from runner.playbook.source import JsonPath, SourceMap

#: names postsync puts in every template context; playbook vars may not shadow them
RESERVED = frozenset({"now", "env", "area", "run", "file"})
_MARKERS = ("{{", "{%", "{#")


def _strftime(value: Any, fmt: str) -> str:
    if not isinstance(value, date | datetime):
        raise TypeError(f"strftime needs a date or datetime, got {type(value).__name__}")
    return value.strftime(fmt)


#: the longest string or list a template may build with `*` (and the largest power)
MAX_SIZE = 1_000_000


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, where `*` and `**` cannot exhaust the memory either."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int) and isinstance(left, int) and abs(right) > 256:
                raise SecurityError(f"{left} ** {right} is too large for a template")
            return left**right
        for seq, times in ((left, right), (right, left)):
            sized = isinstance(seq, str | list | tuple) and isinstance(times, int)
            if sized and len(seq) * times > MAX_SIZE:
                raise SecurityError(
                    f"a {len(seq) * times}-item result is too large for a template"
                    f" (at most {MAX_SIZE})"
                )
        return left * right


def make_environment() -> ImmutableSandboxedEnvironment:
    env = _Sandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters["strftime"] = _strftime
    return env


def is_template(value: str) -> bool:
    return any(marker in value for marker in _MARKERS)


class Renderer:
    """Renders a playbook's strings, reporting every failure at its source location."""

    def __init__(self, smap: SourceMap) -> None:
        self.env = make_environment()
        self.smap = smap
        self._cache: dict[str, jinja2.Template] = {}
        self._expressions: dict[str, Any] = {}

    def _fail(self, path: JsonPath, exc: Exception) -> PlaybookError:
        if isinstance(exc, TemplateSyntaxError):
            message = f"template syntax error: {exc.message} (template line {exc.lineno})"
        elif isinstance(exc, UndefinedError):
            message = f"undefined variable: {exc.message}"
        elif isinstance(exc, SecurityError):
            message = f"unsafe template refused by the sandbox: {exc}"
        else:
            message = f"template error: {type(exc).__name__}: {exc}"
        return PlaybookError([self.smap.problem(path, message)])

    def render(self, value: str, context: Mapping[str, Any], path: JsonPath) -> str:
        if not is_template(value):
            return value
        try:
            template = self._cache.get(value)
            if template is None:
                template = self._cache[value] = self.env.from_string(value)
            return template.render(context)
        except (
            jinja2.TemplateError,
            TypeError,
            ValueError,
            ArithmeticError,
            LookupError,
            AttributeError,
        ) as exc:
            raise self._fail(path, exc) from None

    def render_data(self, value: Any, context: Mapping[str, Any], path: JsonPath) -> Any:
        """Render every string inside lists and mappings."""
        if isinstance(value, str):
            return self.render(value, context, path)
        if isinstance(value, list):
            return [self.render_data(v, context, (*path, i)) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: self.render_data(v, context, (*path, k)) for k, v in value.items()}
        return value

    def evaluate(self, expression: str, context: Mapping[str, Any], path: JsonPath) -> Any:
        """Evaluate a `when` expression."""
        try:
            compiled = self._expressions.get(expression)
            if compiled is None:
                compiled = self._expressions[expression] = self.env.compile_expression(
                    expression, undefined_to_none=False
                )
            result = compiled(**context)
            if isinstance(result, jinja2.Undefined):
                str(result)  # raises UndefinedError
            return result
        except (
            jinja2.TemplateError,
            TypeError,
            ValueError,
            ArithmeticError,
            LookupError,
            AttributeError,
        ) as exc:
            raise self._fail(path, exc) from None

    def undeclared(self, value: str, path: JsonPath, *, expression: bool = False) -> set[str]:
        """Top-level names a template uses; PlaybookError on a syntax error or on an
        access the sandbox would refuse at run time (private attributes)."""
        if not expression and not is_template(value):
            return set()
        source = "{{ (" + value + ") }}" if expression else value
        try:
            tree = self.env.parse(source)
        except TemplateSyntaxError as exc:
            raise self._fail(path, exc) from None
        for name in _private_accesses(tree):
            raise self._fail(path, SecurityError(f"access to {name!r} is not allowed"))
        try:
            # compiles the tree: unknown filters and tests are found here
            return set(jinja2.meta.find_undeclared_variables(tree))
        except TemplateSyntaxError as exc:
            raise self._fail(path, exc) from None


def _private_accesses(tree: nodes.Template) -> list[str]:
    """Attribute names starting with `_`, reached by `.x`, `["x"]` or `|attr("x")`."""
    found = [n.attr for n in tree.find_all(nodes.Getattr) if n.attr.startswith("_")]
    for item in tree.find_all(nodes.Getitem):
        if isinstance(item.arg, nodes.Const) and str(item.arg.value).startswith("_"):
            found.append(str(item.arg.value))
    for flt in tree.find_all(nodes.Filter):
        arg = flt.args[0] if flt.name == "attr" and flt.args else None
        if isinstance(arg, nodes.Const) and str(arg.value).startswith("_"):
            found.append(str(arg.value))
    return found


def strings_in(value: Any, path: JsonPath) -> list[tuple[str, JsonPath]]:
    """Every string inside a parameter value, with its path."""
    if isinstance(value, str):
        return [(value, path)]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in strings_in(v, (*path, i))]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in strings_in(v, (*path, k))]
    return []
