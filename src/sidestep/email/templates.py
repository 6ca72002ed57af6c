"""Message templates: Jinja2 in a sandbox, HTML autoescaped, text not, subjects on one line.

Templates are written by workspace members and rendered once per subscriber, so they run in
a `SandboxedEnvironment` with no loader (no include/extends/import of files), no globals
beyond `range`, `dict` and `namespace`, unknown names failing loudly (`StrictUndefined`), a
cap on string repetition, powers and output size. Anything hostile or broken raises
`TemplateError` naming the part and line; nothing from Jinja leaks out.

Variables: `subscriber` (`email`, `name`, `first_name`, `fields`, `tags`; a missing custom
field reads as empty), `unsubscribe_url`, `preferences_url`, and whatever the caller adds in
`context` (for example `campaign`, `workspace`, `channels`). `lint` checks a template before
it is saved or sent; a campaign template must contain `{{ unsubscribe_url }}` in each part.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, Protocol

import jinja2
from jinja2 import StrictUndefined, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

MAX_TEMPLATE_CHARS = 200_000
MAX_OUTPUT_CHARS = 1_000_000
MAX_RANGE = 10_000
MAX_EXPONENT = 64
BUILTIN_VARIABLES = frozenset({"subscriber", "unsubscribe_url", "preferences_url"})
Part = Literal["subject", "html", "text"]


class TemplateError(ValueError):
    """A template that cannot be compiled or rendered safely; says which part and line."""

    def __init__(self, part: Part, message: str, line: int | None = None) -> None:
        where = f"{part} template" + (f", line {line}" if line else "")
        super().__init__(f"{where}: {message}")
        self.part = part
        self.line = line
        self.message = message


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    html: str
    text: str


@dataclass(frozen=True, slots=True)
class Problem:
    level: Literal["error", "warning"]
    part: Part
    message: str
    line: int | None = None


class SubscriberLike(Protocol):
    @property
    def email(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def fields(self) -> dict[str, Any]: ...
    @property
    def tags(self) -> list[Any]: ...


@dataclass(frozen=True, slots=True)
class SampleSubscriber:
    """A stand-in for previews and the linter."""

    email: str = "alex.sample@example.com"
    name: str = "Alex Sample"
    fields: dict[str, Any] = field(default_factory=dict)
    tags: list[Any] = field(default_factory=list)


class _Fields(dict[str, Any]):
    """Custom fields: a subscriber without the field gets an empty string, not a failure."""

    def __missing__(self, key: str) -> str:
        return ""


@dataclass(frozen=True, slots=True)
class SubscriberView:
    """What templates see of a subscriber: plain values, never the database row."""

    email: str
    name: str
    first_name: str
    fields: _Fields
    tags: tuple[str, ...]

    @classmethod
    def of(cls, subscriber: SubscriberLike) -> SubscriberView:
        name = subscriber.name or ""
        return cls(email=subscriber.email, name=name, first_name=name.split(" ")[0],
                   fields=_Fields(subscriber.fields or {}),
                   tags=tuple(str(t) for t in subscriber.tags or ()))


def _capped_range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_RANGE:
        raise SecurityError(f"range() is limited to {MAX_RANGE} items in templates")
    return result


class _Sandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"powers above {MAX_EXPONENT} are not allowed in templates")
            return left**right
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, str | list | tuple) and isinstance(times, int) and (
                len(seq) * times > MAX_OUTPUT_CHARS
            ):
                raise SecurityError("this repetition would make the message too large")
        return left * right


def _environment(*, autoescape: bool) -> _Sandbox:
    env = _Sandbox(autoescape=autoescape, undefined=StrictUndefined, loader=None,
                   keep_trailing_newline=True, auto_reload=False)
    env.globals.clear()
    env.globals.update(range=_capped_range, dict=dict, namespace=jinja2.utils.Namespace)
    return env


_HTML = _environment(autoescape=True)
_TEXT = _environment(autoescape=False)
_FILE_NODES = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _compile(env: _Sandbox, source: str, part: Part) -> jinja2.Template:
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateError(part, f"longer than {MAX_TEMPLATE_CHARS} characters")
    try:
        ast = env.parse(source)
        if any(True for _ in ast.find_all(_FILE_NODES)):
            raise TemplateError(part, "templates cannot include, import or extend other files")
        return env.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(part, exc.message or "syntax error", exc.lineno) from exc


def _line_of(exc: BaseException) -> int | None:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _run(template: jinja2.Template, variables: Mapping[str, Any], part: Part) -> str:
    pieces: list[str] = []
    size = 0
    try:
        for piece in template.generate(variables):
            size += len(piece)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateError(part, f"renders to more than {MAX_OUTPUT_CHARS} characters")
            pieces.append(piece)
    except TemplateError:
        raise
    except SecurityError as exc:
        raise TemplateError(part, f"not allowed: {exc}", _line_of(exc)) from exc
    except jinja2.UndefinedError as exc:
        raise TemplateError(part, exc.message or "undefined value", _line_of(exc)) from exc
    except jinja2.TemplateError as exc:
        raise TemplateError(part, str(exc), _line_of(exc)) from exc
    except (ArithmeticError, TypeError, ValueError, LookupError, AttributeError,
            RecursionError) as exc:
        raise TemplateError(part, f"{type(exc).__name__}: {exc}", _line_of(exc)) from exc
    return "".join(pieces)


def one_line(text: str) -> str:
    """Header-safe text: control characters (CR and LF above all) become single spaces."""
    return " ".join(_CONTROL.sub(" ", text).split())


@dataclass(frozen=True, slots=True)
class CompiledTemplates:
    """Subject, HTML and text compiled once, rendered per subscriber."""

    subject: jinja2.Template
    html: jinja2.Template | None
    text: jinja2.Template | None

    def render(self, subscriber: SubscriberLike, context: Mapping[str, Any]) -> Rendered:
        variables = {"unsubscribe_url": "", "preferences_url": "", **context,
                     "subscriber": SubscriberView.of(subscriber)}
        return Rendered(
            subject=one_line(_run(self.subject, variables, "subject")),
            html=_run(self.html, variables, "html") if self.html else "",
            text=_run(self.text, variables, "text") if self.text else "",
        )


@lru_cache(maxsize=64)
def compile_templates(subject_tpl: str, html_tpl: str, text_tpl: str) -> CompiledTemplates:
    """Compile the three parts (an empty part stays empty); raise `TemplateError`."""
    return CompiledTemplates(
        subject=_compile(_TEXT, subject_tpl, "subject"),
        html=_compile(_HTML, html_tpl, "html") if html_tpl else None,
        text=_compile(_TEXT, text_tpl, "text") if text_tpl else None,
    )


def render(
    subject_tpl: str, html_tpl: str, text_tpl: str, subscriber: SubscriberLike,
    context: Mapping[str, Any],
) -> Rendered:
    """Render the message for one subscriber; raise `TemplateError` for a broken or hostile
    template (compiled templates are cached, so calling this per recipient is cheap)."""
    return compile_templates(subject_tpl, html_tpl, text_tpl).render(subscriber, context)


def preview(
    subject_tpl: str, html_tpl: str, text_tpl: str, *, base_url: str = "https://example.com",
    subscriber: SubscriberLike | None = None, context: Mapping[str, Any] | None = None,
) -> Rendered:
    """Render with a sample subscriber and placeholder links."""
    links = {"unsubscribe_url": f"{base_url.rstrip('/')}/u/SAMPLE",
             "preferences_url": f"{base_url.rstrip('/')}/p/SAMPLE"}
    return render(subject_tpl, html_tpl, text_tpl, subscriber or SampleSubscriber(),
                  {**links, **(context or {})})


def _uses(ast: nodes.Template, name: str) -> bool:
    return any(node.name == name for node in ast.find_all(nodes.Name))


def lint(
    subject_tpl: str, html_tpl: str, text_tpl: str, *, campaign: bool = True,
    known: Iterable[str] = (), sample_context: Mapping[str, Any] | None = None,
) -> list[Problem]:
    """Return the template's problems, errors first. A template with no errors renders for the
    sample subscriber; `known` names the extra context variables the caller will supply."""
    problems: list[Problem] = []
    known = set(known)
    allowed = BUILTIN_VARIABLES | known | set(sample_context or {})
    if not subject_tpl.strip():
        problems.append(Problem("error", "subject", "the subject is empty"))
    if not html_tpl.strip() and not text_tpl.strip():
        problems.append(Problem("error", "text", "the message has neither an HTML nor a text part"))
    parts: Sequence[tuple[Part, str, _Sandbox]] = (
        ("subject", subject_tpl, _TEXT), ("html", html_tpl, _HTML), ("text", text_tpl, _TEXT))
    for part, source, env in parts:
        if not source.strip():
            continue
        try:
            ast = env.parse(source)
        except jinja2.TemplateSyntaxError as exc:
            problems.append(Problem("error", part, exc.message or "syntax error", exc.lineno))
            continue
        for name in sorted(meta.find_undeclared_variables(ast) - allowed):
            problems.append(Problem("error", part, f"unknown variable {name!r}"))
        if campaign and part != "subject" and not _uses(ast, "unsubscribe_url"):
            problems.append(
                Problem("error", part, "no unsubscribe link: add {{ unsubscribe_url }}"))
        if part == "subject" and _uses(ast, "unsubscribe_url"):
            problems.append(Problem("warning", part, "the unsubscribe link belongs in the body"))
        if part == "html":
            problems.extend(_html_warnings(source, ast, campaign=campaign))
    if html_tpl.strip() and not text_tpl.strip():
        problems.append(Problem("warning", "text", "no plain-text part; some readers need one"))
    if len(subject_tpl) > 150:
        problems.append(Problem("warning", "subject", "long subjects are cut off in inboxes"))
    if not any(p.level == "error" for p in problems):
        try:
            # Known names without a sample value render as empty, whatever is asked of them.
            stand_ins = {name: jinja2.ChainableUndefined(name=name) for name in known}
            preview(subject_tpl, html_tpl, text_tpl,
                    context={**stand_ins, **(sample_context or {})})
        except TemplateError as exc:
            problems.append(Problem("error", exc.part, exc.message, exc.line))
    return sorted(problems, key=lambda p: p.level != "error")


def _html_warnings(source: str, ast: nodes.Template, *, campaign: bool) -> list[Problem]:
    found: list[Problem] = []
    if any(f.name == "safe" for f in ast.find_all(nodes.Filter)) or any(
        True for _ in ast.find_all(nodes.EvalContextModifier)
    ):
        found.append(Problem("warning", "html", "`safe` or autoescape off inserts values "
                             "unescaped; subscriber data could break the page"))
    if campaign and _uses(ast, "unsubscribe_url") and not re.search(
        r"href\s*=\s*[\"']?\s*\{\{-?\s*unsubscribe_url", source
    ):
        found.append(Problem("warning", "html", "{{ unsubscribe_url }} is not inside a link's "
                             "href; readers need something to click"))
    return found
