"""What error codes a route's code can answer, found by reading it (tests/test_error_codes.py).

A static walk: from a function, through every app function it names (called, or handed on as
`db.write(service.enroll, ...)` hands one on), collecting the (status, code) of each domain
error it builds. A function handed on to a write may also return its refusal for the write to
answer once committed (app/auth/service.py `_renew`): what it returns counts as raised there.
Names are resolved as Python would: through the function's closure, its module's globals (its
imports), the annotations of its parameters and locals (`db: Db` is a
Database, `call: Call` a Call, so `call.throttle.start_login` is Throttle.start_login), and
`self`. It over-approximates (every branch counts), with one distinction that keeps it honest:
an error a function *returns* (`eligibility_refusal` returns the 409 it would refuse with) counts
only where a caller raises what that function returned, so the promotion that merely records a
refusal does not make every drop answer `hold`.

A code must be a literal at the site that builds the error (or a local name bound only to
literals): a code computed at run time cannot be checked, and is reported as a problem.
"""

import ast
import inspect
import textwrap
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from app.common.errors import DomainError, Relayed

Answer = tuple[int, str]  # (status, code)


@dataclass(frozen=True)
class Instance:
    """A value known by its class only (a parameter's annotation, `self`)."""

    cls: type


@dataclass(frozen=True)
class Method:
    """A function looked up on a class (or an Instance of it): walked with `self` as one."""

    fn: Callable[..., Any]
    owner: type


@dataclass(frozen=True)
class Effects:
    raised: frozenset[Answer] = frozenset()  # what can leave the function as an exception
    returned: frozenset[Answer] = frozenset()  # errors it returns as values, for a caller to raise
    relays: bool = False  # passes on another node's answer (Relayed)
    problems: frozenset[str] = frozenset()  # codes that are not literals


@dataclass
class _Found:
    raised: set[Answer] = field(default_factory=set)
    returned: set[Answer] = field(default_factory=set)
    relays: bool = False
    problems: set[str] = field(default_factory=set)


Key = tuple[Callable[..., Any], type | None]  # a function, and the class it is a method of


def _is_app(obj: object) -> bool:
    return (getattr(obj, "__module__", None) or "").startswith("app.")


def _is_error_class(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, DomainError)


def _function(obj: object) -> Callable[..., Any] | None:
    """The plain app function behind `obj` (a decorated one unwrapped), or None."""
    if isinstance(obj, staticmethod | classmethod):
        obj = obj.__func__
    if not isinstance(obj, types.FunctionType) or not _is_app(obj):
        return None
    return inspect.unwrap(obj)


class Walker:
    """Effects of app functions, computed once each (to a fixed point, for recursion).
    `sources` gives the answers that reaching a function brings with it where they come from
    outside the code walked (the database's refusals, from a write transaction)."""

    def __init__(self, sources: dict[Callable[..., Any], set[Answer]] | None = None) -> None:
        self.sources = {id(inspect.unwrap(f)): answers for f, answers in (sources or {}).items()}
        self.table: dict[Key, Effects] = {}
        self._stack: set[Key] = set()
        self._done: set[Key] = set()
        self._changed = False
        self._trees: dict[Callable[..., Any], ast.FunctionDef | ast.AsyncFunctionDef | None] = {}

    def effects_of(self, roots: list[Key]) -> Effects:
        """The effects of running all of `roots` (a route's endpoint, dependencies, handler)."""
        while True:
            self._changed, self._done = False, set()
            found = [self._effects(key) for key in roots]
            if not self._changed:
                return Effects(
                    raised=frozenset().union(*(e.raised for e in found)),
                    relays=any(e.relays for e in found),
                    problems=frozenset().union(*(e.problems for e in found)),
                )

    def _effects(self, key: Key) -> Effects:
        if key in self._done or key in self._stack:
            return self.table.get(key, Effects())
        self._stack.add(key)
        try:
            effects = self._compute(*key)
        finally:
            self._stack.discard(key)
        self._done.add(key)
        if self.table.get(key) != effects:
            self._changed = True
            self.table[key] = effects
        return effects

    def _tree(self, fn: Callable[..., Any]) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        """The function's syntax tree; None for code made at run time (a dataclass's
        `__init__`), which raises no domain error."""
        if fn not in self._trees:
            try:
                source = inspect.getsource(fn)
            except OSError:
                self._trees[fn] = None
                return None
            node = ast.parse(textwrap.dedent(source)).body[0]
            assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef), fn
            self._trees[fn] = node
        return self._trees[fn]

    def _compute(self, fn: Callable[..., Any], owner: type | None) -> Effects:
        found = _Found()
        found.raised |= self.sources.get(id(fn), set())
        tree = self._tree(fn)
        if tree is None:
            return Effects(raised=frozenset(found.raised))
        scope = _Scope(fn, owner, tree)
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _is_error_class(cls := scope.resolve(node.func)):
                self._built(node, cls, scope, parents, found, fn)
            elif isinstance(node, ast.Name | ast.Attribute) and isinstance(node.ctx, ast.Load):
                handed_on = _handed_on(node, parents)
                for callee in self._callees(scope.resolve(node)):
                    effects = self._effects(callee)
                    found.raised |= effects.raised
                    found.relays |= effects.relays
                    found.problems |= effects.problems
                    if handed_on:  # a rule handed to a write, which answers what it returns
                        found.raised |= effects.returned
            if isinstance(node, ast.Raise) and node.exc is not None:
                found.raised |= self._handed_back(node.exc, scope)
            elif isinstance(node, ast.Return) and node.value is not None:
                found.returned |= self._handed_back(node.value, scope)
        return Effects(
            raised=frozenset(found.raised),
            returned=frozenset(found.returned),
            relays=found.relays,
            problems=frozenset(found.problems),
        )

    def _callees(self, target: object) -> Iterator[Key]:
        """The app functions a name stands for: a function, a method, or a class (its
        `__init__`); never an error class (its construction is a raise site)."""
        if isinstance(target, Method):
            yield target.fn, target.owner
        elif (fn := _function(target)) is not None:
            yield fn, None
        elif isinstance(target, type) and _is_app(target) and not _is_error_class(target):
            init = _function(target.__dict__.get("__init__"))
            if init is not None:
                yield init, target

    def _handed_back(self, expr: ast.expr, scope: "_Scope") -> set[Answer]:
        """The errors another function returned that `expr` (raised or returned here) is:
        `raise refusal` after `refusal = eligibility_refusal(...)`, or `return g(...)`."""
        calls = [expr] if isinstance(expr, ast.Call) else []
        if isinstance(expr, ast.Name):
            calls = [v for v in scope.bindings(expr.id) if isinstance(v, ast.Call)]
        answers: set[Answer] = set()
        for call in calls:
            for callee in self._callees(scope.resolve(call.func)):
                answers |= self._effects(callee).returned
        return answers

    def _built(
        self,
        node: ast.Call,
        cls: type[DomainError],
        scope: "_Scope",
        parents: dict[ast.AST, ast.AST],
        found: _Found,
        fn: Callable[..., Any],
    ) -> None:
        """A domain error built here: raised, returned, or bound to a name that is one of them."""
        if issubclass(cls, Relayed):
            found.relays = True  # another node's answer, passed on: see test_error_codes.py
            return
        line = node.lineno + fn.__code__.co_firstlineno - 1
        where = f"{fn.__module__}.{fn.__qualname__}, line {line}"
        codes = literal_codes(node, scope, default=cls.code)
        if codes is None:
            found.problems.add(f"{where}: {cls.__name__}'s code is not a literal")
            return
        answers = {(cls.status, code) for code in codes}
        parent = parents.get(node)
        if isinstance(parent, ast.Return) or (
            isinstance(parent, ast.Assign)
            and all(isinstance(t, ast.Name) and scope.only_returned(t.id) for t in parent.targets)
        ):
            found.returned |= answers
        else:
            found.raised |= answers  # raised, or kept to raise: counted raised


def _handed_on(node: ast.expr, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether `node` is handed to a call as an argument (`call.write(_renew, ...)`) rather than
    called: the function it names is run by the callee, which answers a refusal it returns
    (app/auth/primary.py `Primary.write` raises it once committed)."""
    parent = parents.get(node)
    if isinstance(parent, ast.keyword):
        parent = parents.get(parent)
    return isinstance(parent, ast.Call) and parent.func is not node


def literal_codes(node: ast.Call, scope: "_Scope | None", *, default: str) -> set[str] | None:
    """The codes an error built by `node` can carry: its `code=` (a literal, a choice of
    literals, or a local name bound to literals only), or its class's own; None if unknown."""
    given = next((k.value for k in node.keywords if k.arg == "code"), None)
    if given is None:
        return {default}
    return _literals(given, scope, depth=0)


def _literals(expr: ast.expr, scope: "_Scope | None", *, depth: int) -> set[str] | None:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return {expr.value}
    if isinstance(expr, ast.IfExp):
        body = _literals(expr.body, scope, depth=depth)
        orelse = _literals(expr.orelse, scope, depth=depth)
        return None if body is None or orelse is None else body | orelse
    if isinstance(expr, ast.Name) and scope is not None and depth < 3:
        values = scope.bindings(expr.id)
        if not values:
            return None
        codes: set[str] = set()
        for value in values:
            more = _literals(value, scope, depth=depth + 1)
            if more is None:
                return None
            codes |= more
        return codes
    return None


class _Scope:
    """What the names in one function (and the functions nested in it) stand for."""

    def __init__(
        self,
        fn: Callable[..., Any],
        owner: type | None,
        tree: ast.FunctionDef | ast.AsyncFunctionDef,
    ) -> None:
        self.fn, self.owner, self.tree = fn, owner, tree
        self.globals: dict[str, Any] = fn.__globals__
        cells = (cell.cell_contents for cell in fn.__closure__ or ())
        self.closure = dict(zip(fn.__code__.co_freevars, cells, strict=True))
        self.typed: dict[str, object] = {}
        self.local: set[str] = set()
        self._bindings: dict[str, list[ast.expr]] = {}
        self._uses: dict[str, set[str]] = {}
        for node in ast.walk(tree):
            self._note(node)
        hints = _hints(fn)
        first = next(iter(inspect.signature(fn).parameters), None)
        for name in self.local:
            if name in hints:
                self.typed[name] = hints[name]
        if owner is not None and first is not None:
            self.typed[first] = owner  # self (or cls)

    def _note(self, node: ast.AST) -> None:
        if isinstance(node, ast.arg):
            self.local.add(node.arg)
            if node.annotation is not None and node.arg not in self.typed:
                self.typed[node.arg] = _Annotation(node.annotation)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            self.local.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            self.typed[node.target.id] = _Annotation(node.annotation)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            self.local.add(node.name)
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self._bindings.setdefault(target.id, []).append(node.value)
        elif isinstance(node, ast.For) and isinstance(node.target, ast.Tuple):
            # for field, used, code in (("capacity", "enrolled", "capacity_below..."), ...)
            rows = node.iter.elts if isinstance(node.iter, ast.Tuple | ast.List) else None
            for i, target in enumerate(node.target.elts):
                if isinstance(target, ast.Name):
                    values = self._bindings.setdefault(target.id, [])
                    for row in rows or [ast.Name(id="<not a literal>")]:
                        is_row = isinstance(row, ast.Tuple) and i < len(row.elts)
                        values.append(row.elts[i] if is_row else ast.Name(id="<not a literal>"))
        elif isinstance(node, ast.Raise | ast.Return):
            value = node.exc if isinstance(node, ast.Raise) else node.value
            if isinstance(value, ast.Name):
                self._uses.setdefault(value.id, set()).add(type(node).__name__)

    def bindings(self, name: str) -> list[ast.expr]:
        return self._bindings.get(name, [])

    def only_returned(self, name: str) -> bool:
        return self._uses.get(name) == {"Return"}

    def resolve(self, expr: ast.expr) -> object:
        """What `expr` stands for, as far as names and annotations say: a module, a function, a
        class, an Instance, a Method; None when it cannot tell."""
        if isinstance(expr, ast.Name):
            name = expr.id
            if name in self.typed:
                return _instance(self._annotation(self.typed[name]))
            if name in self.local:
                return None
            if name in self.closure:
                return self.closure[name]
            return self.globals.get(name)
        if isinstance(expr, ast.Attribute):
            base = self.resolve(expr.value)
            return None if base is None else _attribute(base, expr.attr)
        if isinstance(expr, ast.Call):
            made = self.resolve(expr.func)
            return Instance(made) if isinstance(made, type) and _is_app(made) else None
        return None

    def _annotation(self, hint: object) -> object:
        if isinstance(hint, _Annotation):
            return self.resolve(hint.expr) if not isinstance(hint.expr, ast.Constant) else None
        return hint


@dataclass(frozen=True)
class _Annotation:
    expr: ast.expr


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # an annotation that cannot be evaluated here: the AST's is used
        return {}


def _instance(hint: object) -> object:
    """An Instance of the app class an annotation names (Annotated and `X | None` looked
    through), or None."""
    if isinstance(hint, Instance | type) and not isinstance(hint, type):
        return hint
    if typing.get_origin(hint) is typing.Annotated:
        hint = typing.get_args(hint)[0]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        classes = [a for a in typing.get_args(hint) if isinstance(a, type) and _is_app(a)]
        hint = classes[0] if len(classes) == 1 else None
    return Instance(hint) if isinstance(hint, type) and _is_app(hint) else None


def _attribute(base: object, name: str) -> object:
    if isinstance(base, Instance):
        cls = base.cls
        try:
            static = inspect.getattr_static(cls, name)
        except AttributeError:
            static = None
        if (fn := _function(static)) is not None:
            owner = next(c for c in cls.__mro__ if name in c.__dict__)
            return Method(fn, owner)
        if isinstance(static, property) and (getter := _function(static.fget)) is not None:
            return Method(getter, cls)
        hints = _class_hints(cls)
        return _instance(hints[name]) if name in hints else None
    if isinstance(base, Method):
        return None
    if isinstance(base, type) and (fn := _function(inspect.getattr_static(base, name, None))):
        return Method(fn, base)
    return getattr(base, name, None)


def _class_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:
        return {}
