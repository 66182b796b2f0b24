"""The one Jinja2 factory: sandboxed, undefined is an error, `strftime` filter."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import date, datetime
from typing import Any

import jinja2
import jinja2.meta
from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from runner.core.errors import PlaybookError
from runner.playbook import limits
from runner.playbook.source import JsonPath, SourceMap

#: names postsync puts in every template context; playbook vars may not shadow them
RESERVED = frozenset({"now", "env", "area", "run", "file"})
_MARKERS = ("{{", "{%", "{#")
#: the fields of the objects postsync puts in templates (runner.step.context builds
#: them); a template naming another is refused before anything runs
FIELDS = {
    "file": frozenset({"path", "name", "stem", "suffix", "feed_stem", "parent", "command"}),
    "run": frozenset(
        {
            "id",
            "host",
            "check",
            "failed_lines",
            "lines_ok",
            "failed",
            "step_failed",
            "steps",
            "errors",
        }
    ),
}
_MAPPING_METHODS = frozenset({"get", "items", "keys", "values"})


def _strftime(value: Any, fmt: str) -> str:
    if not isinstance(value, date | datetime):
        raise TypeError(f"strftime needs a date or datetime, got {type(value).__name__}")
    return value.strftime(fmt)


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, where no template can exhaust the memory or the
    processor either (runner.playbook.limits)."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = limits.CheckedGenerator

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.budget = limits.Budget()
        self.checked_concat = limits.checked_concat
        self.filters.update(limits.sized_filters(self.filters))
        self.filters[limits.LOOP_FILTER] = self.budget.loop

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return limits.count_loops(super()._parse(source, name, filename))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        limits.check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:  # "...".format: its field widths, before it runs
            limits.check_format(value.__self__)
        return wrapped

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        limits.check_method(__obj, args)
        return super().call(__context, __obj, *args, **kwargs)


class Environ(dict[str, str]):
    """`env` in templates: the process environment (a variable not set is named so)."""


class StrictUndefined(jinja2.StrictUndefined):
    """Jinja's, saying which environment variable is not set."""

    @property
    def _undefined_message(self) -> str:
        if isinstance(self._undefined_obj, Environ) and self._undefined_hint is None:
            name = self._undefined_name
            return (
                f"environment variable {name!r} is not set (set it, or give a default:"
                f" env.{name} | default('...'))"
            )
        return str(super()._undefined_message)


def make_environment() -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    env.filters["strftime"] = _strftime
    return env


def is_template(value: str) -> bool:
    return any(marker in value for marker in _MARKERS)


#: what a template's failure can be, besides recursion and memory
_ERRORS = (
    jinja2.TemplateError,
    TypeError,
    ValueError,
    ArithmeticError,
    LookupError,
    AttributeError,
)


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

    @contextlib.contextmanager
    def _located(self, path: JsonPath) -> Iterator[None]:
        """A rendering with a fresh loop budget; any failure is a located PlaybookError."""
        self.env.budget.reset()
        try:
            yield
        except RecursionError:
            too_deep = SecurityError("recursion too deep (a macro calling itself?)")
            raise self._fail(path, too_deep) from None
        except MemoryError:
            raise self._fail(path, SecurityError("out of memory building its value")) from None
        except _ERRORS as exc:
            raise self._fail(path, exc) from None

    def render(self, value: str, context: Mapping[str, Any], path: JsonPath) -> str:
        if not is_template(value):
            return value
        with self._located(path):
            template = self._cache.get(value)
            if template is None:
                template = self._cache[value] = self.env.from_string(value)
            result = template.render(context)
            limits.check_size(len(result), "the template")
        return result

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
        with self._located(path):
            compiled = self._expressions.get(expression)
            if compiled is None:
                compiled = self._expressions[expression] = self.env.compile_expression(
                    expression, undefined_to_none=False
                )
            result = compiled(**context)
            if isinstance(result, jinja2.Undefined):
                str(result)  # raises UndefinedError
        return result

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

    def unknown_fields(self, value: str, *, expression: bool = False) -> list[str]:
        """`file.nmae`-like uses of a field postsync's objects do not have (the template
        is known to parse: `undeclared` came first)."""
        if not expression and not is_template(value):
            return []
        tree = self.env.parse("{{ (" + value + ") }}" if expression else value)
        found = []
        for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
            target = getattr(node, "node", None)
            if not isinstance(target, nodes.Name) or target.name not in FIELDS:
                continue
            arg = getattr(node, "arg", None)
            if isinstance(node, nodes.Getattr):
                field = node.attr
            elif isinstance(arg, nodes.Const) and isinstance(arg.value, str):
                field = arg.value
            else:
                continue
            known = FIELDS[target.name]
            if field not in known and field not in _MAPPING_METHODS:
                found.append(
                    f"{target.name} has no field {field!r} (it has: {', '.join(sorted(known))})"
                )
        return found


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
