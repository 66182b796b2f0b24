"""What a template may cost: the size of what it builds, its loop iterations, its depth.

Jinja's sandbox stops a template from reaching Python's internals, not from exhausting
the memory or the processor. Here every way a template can build a large value is
checked *before* the value is built (`*`, `+`, `~`, `%`, `replace`, `indent`, `center`,
`join`, `format`, `batch`, `slice` and the matching string methods), every loop counts
against one budget per rendering, and a recursion too deep ends the rendering. Each
raises SecurityError, which the renderer reports at the template's location (exit 4).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError

#: the longest string or list a template may build
MAX_SIZE = 1_000_000
#: loop iterations one rendering may run, all loops together
MAX_ITERATIONS = 1_000_000
#: the name of the filter wrapped around every loop's iterable
LOOP_FILTER = "postsync_loop_budget"

_WIDTH = re.compile(r"%[-+ #0]*(\d+)|\{[^{}]*:[^{}]*?(\d+)[^{}]*\}")


def check_size(size: int, what: str) -> None:
    if size > MAX_SIZE:
        raise SecurityError(
            f"{what} would build a result of {size:,} characters or items (templates"
            f" are limited to {MAX_SIZE:,})"
        )


def check_format(spec: Any) -> None:
    """A format string's field widths (`%99999999s`, `{:>99999999}`)."""
    if isinstance(spec, str):
        for match in _WIDTH.finditer(spec):
            width = match.group(1) or match.group(2)
            check_size(int(width), "a format width")


def _replaced(text: str, old: Any, new: Any, count: Any = None) -> int:
    old, new = str(old), str(new)
    n = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        n = min(n, count)
    return len(text) + n * max(0, len(new) - len(old))


def _joined(items: list[Any], separator: Any) -> int:
    return sum(len(str(x)) for x in items) + len(str(separator)) * max(0, len(items) - 1)


def _width(value: Any) -> int:
    return value if isinstance(value, int) else len(str(value))


def _check_replace(s: Any, old: Any, new: Any, count: Any = None) -> None:
    check_size(_replaced(str(s), old, new, count), "replace")


def _check_indent(s: Any, width: Any = 4, *_args: Any, **_kwargs: Any) -> None:
    text = str(s)
    check_size(len(text) + (text.count("\n") + 1) * _width(width), "indent")


def _check_center(_value: Any, width: Any = 80) -> None:
    check_size(_width(width), "center")


def _check_join(value: Any, d: Any = "", attribute: Any = None) -> tuple[Any, ...]:
    items = list(value)  # an iterator is read once: join gets the list
    check_size(len(items), "join")
    if attribute is None:
        check_size(_joined(items, d), "join")
    return (items, d, attribute)


def _check_format(value: Any, *_args: Any, **_kwargs: Any) -> None:
    check_format(value)


def _check_count(what: str) -> Callable[..., None]:
    def check(_value: Any, count: Any, *_args: Any, **_kwargs: Any) -> None:
        check_size(_width(count), what)

    return check


def _check_wordwrap(s: Any, _width_: Any = 79, *args: Any, **kwargs: Any) -> None:
    wrap = kwargs.get("wrapstring") or (args[1] if len(args) > 1 else None) or "\n"
    check_size(len(str(s)) * (1 + len(str(wrap))), "wordwrap")


#: the filters that can build large values, and the check each runs first
_CHECKS: dict[str, Callable[..., Any]] = {
    "replace": _check_replace,
    "indent": _check_indent,
    "center": _check_center,
    "join": _check_join,
    "format": _check_format,
    "batch": _check_count("batch"),
    "slice": _check_count("slice"),
    "wordwrap": _check_wordwrap,
}


def _checked(original: Callable[..., Any], check: Callable[..., Any]) -> Callable[..., Any]:
    # Jinja passes the filter its context first when it is marked so (pass_eval_context,
    # pass_environment, and every async variant): the check sees the filter's own
    # arguments, and may hand it replacements (join's iterator, read into a list).
    marker = getattr(original, "jinja_pass_arg", None)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        head, own = (args[:1], args[1:]) if marker is not None else ((), args)
        replaced = check(*own, **kwargs)
        if replaced is not None:
            own, kwargs = replaced, {}
        return original(*head, *own, **kwargs)

    if marker is not None:
        wrapper.jinja_pass_arg = marker  # type: ignore[attr-defined]
    return wrapper


def sized_filters(filters: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Jinja's filters that can build large values, each checked before it runs."""
    return {name: _checked(filters[name], check) for name, check in _CHECKS.items()}


def check_method(obj: Any, args: tuple[Any, ...]) -> None:
    """A string method about to be called from a template (`"x".center(10**9)`)."""
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if not isinstance(owner, str):
        return
    if name in ("center", "ljust", "rjust", "zfill") and args:
        check_size(_width(args[0]), name)
    elif name == "expandtabs":
        tab = args[0] if args and isinstance(args[0], int) else 8
        check_size(len(owner) + owner.count("\t") * tab, name)
    elif name == "replace" and len(args) >= 2:
        check_size(_replaced(owner, args[0], args[1], args[2] if len(args) > 2 else None), name)
    elif name in ("format", "format_map"):
        check_format(owner)


def check_binop(operator: str, left: Any, right: Any) -> None:
    """`*`, `**`, `+` and `%` whose result would be too large."""
    if operator == "**":
        if isinstance(right, int) and isinstance(left, int) and abs(right) > 256:
            raise SecurityError(f"{left} ** {right} is too large for a template")
    elif operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int):
                check_size(len(seq) * times, "`*`")
    elif operator == "+":
        if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
            check_size(len(left) + len(right), "`+`")
    elif operator == "%":
        check_format(left)


class Budget:
    """The loop iterations left to one rendering."""

    def __init__(self) -> None:
        self.left = MAX_ITERATIONS

    def reset(self) -> None:
        self.left = MAX_ITERATIONS

    def loop(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.left -= 1
            if self.left < 0:
                raise SecurityError(f"loops ran more than {MAX_ITERATIONS:,} times in one template")
            yield item


def count_loops(tree: nodes.Template) -> nodes.Template:
    """Every `{% for %}` iterates through the budget filter (LOOP_FILTER)."""
    for loop in tree.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, LOOP_FILTER, [], [], None, None, lineno=loop.lineno)
    return tree


def checked_concat(parts: Iterable[Any]) -> str:
    """`a ~ b ~ ...`: the joined length checked before it is built."""
    texts = [str(p) for p in parts]
    check_size(sum(len(t) for t in texts), "`~`")
    return "".join(texts)


class CheckedGenerator(CodeGenerator):
    """Jinja's code generator, with `~` built by `checked_concat`."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")
