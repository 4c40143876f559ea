"""The API says what it can refuse (issue 25): each route's OpenAPI schema lists, per status, the
error codes it can answer, and those are exactly the codes its code can raise.

"Can raise" is read from the code, not listed again here: tests/raise_sites.py walks from each
route's endpoint, its dependencies and its route class's handler (the enrollment service's
`identify`) through every app function they name, collecting the codes of the domain errors
built on the way. Added to those, what the code walked does not build itself:
- the database's 503s, wherever a route reaches a write transaction (`DATABASE` below);
- 500 `internal_error` on every route, 422 `validation_error` where the schema shows input that
  FastAPI validates, 413 `body_too_large` where it shows a request body (app/common/errors.py's
  handlers and app/common/limits.py).
A replica's relayed refusal (app/auth/primary.py `Relayed`) is the primary's answer to the same
route, sent on as it came: its codes are that route's own, found by the same walk.
"""

import functools
import inspect
import pkgutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

import app
from app import error_table
from app.auth.codes import CODES as AUTH_CODES
from app.common.db import immediate
from app.common.errors import ANY_PATH, DATABASE_REFUSALS, Catalog
from app.common.identity import ROLES
from app.enrollment.codes import CODES as ENROLLMENT_CODES
from tests.fuzz.helpers import auth_app, enrollment_app
from tests.raise_sites import Answer, Effects, Key, Walker

# Where the database's refusals come from: app/common/errors.py answers SQLite's busy, full and
# read-only errors with them, and a write meets them in its BEGIN IMMEDIATE (app/common/db.py
# `immediate`), the one way both services write.
DATABASE: dict[Callable[..., Any], set[Answer]] = {
    immediate: {(503, code) for code in DATABASE_REFUSALS}
}

CATALOGS: dict[str, Catalog] = {"enrollment": ENROLLMENT_CODES, "auth": AUTH_CODES}
SERVICES = list(CATALOGS)


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FastAPI]:
    root = tmp_path_factory.mktemp("error-codes")
    return {"enrollment": enrollment_app(root / "enroll")[0], "auth": auth_app(root / "auth")[0]}


def declared(operation: dict[str, Any]) -> set[Answer]:
    """The (status, code) pairs an operation of the OpenAPI schema declares."""
    return {
        (int(status), code)
        for status, response in operation["responses"].items()
        for code in response.get("x-codes", {})
    }


def handlers_answers(method: str, operation: dict[str, Any]) -> set[Answer]:
    """What the error handlers and the body limit answer on this operation, as its schema
    shows its input: validated parameters or a JSON body (422); a body at all, or a method that
    may carry one, which the body limit reads before any route (413: POST /accept takes no body,
    and a 2 MB one sent to it is still refused unread)."""
    answers = {(500, "internal_error")}
    body = operation.get("requestBody", {}).get("content", {})
    if operation.get("parameters") or "application/json" in body:
        answers.add((422, "validation_error"))
    if body or method in ("POST", "PUT", "PATCH"):
        answers.add((413, "body_too_large"))
    return answers


def routes(app: FastAPI) -> Iterator[tuple[str, str, APIRoute]]:
    """(method, path, route) of each route in the OpenAPI schema."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.include_in_schema:
            for method in sorted(context.methods or ()):
                yield method, context.path_format, route


def can_raise(walker: Walker, route: APIRoute) -> Effects:
    """What the code of `route` can raise: its endpoint's, its dependencies', and its route
    class's handler's (which, for `identify`'s role check, answers 403 only on a route whose
    roles leave one out). The handler is looked up as Python would, through the class's bases
    (a write route's KeyedWrite takes CallerFirst's), and walked as a method of the route's own
    class, so that what it calls on `self` is that class's (KeyedWrite.answer)."""
    roots: list[Key] = [(inspect.unwrap(route.endpoint), None)]
    pending = list(route.dependant.dependencies)
    while pending:
        dependency = pending.pop()
        if dependency.call is not None:
            roots.append((dependency.call, None))
        pending.extend(dependency.dependencies)
    found = walker.effects_of(roots)
    handler = next(
        (
            cls.__dict__["get_route_handler"]
            for cls in type(route).__mro__
            if cls.__module__.startswith("app.") and "get_route_handler" in cls.__dict__
        ),
        None,
    )
    if handler is None:
        return found
    around = walker.effects_of([(handler, type(route))])
    raised = around.raised
    if set(ROLES) <= set((route.openapi_extra or {}).get("x-roles", ())):
        raised -= {(403, "forbidden")}
    return Effects(
        raised=found.raised | raised,
        relays=found.relays or around.relays,
        problems=found.problems | around.problems,
    )


def by_status(answers: set[Answer]) -> dict[int, list[str]]:
    grouped: dict[int, list[str]] = {}
    for status, code in sorted(answers):
        grouped.setdefault(status, []).append(code)
    return grouped


@pytest.mark.parametrize("service", SERVICES)
def test_each_route_declares_exactly_the_codes_its_code_can_raise(apps, service):
    """Both ways: a code a route can raise that its schema does not declare (a new
    `raise Conflict(..., code="new_thing")` on its way) fails, and so does a declared code that
    nothing the route reaches raises."""
    schema = apps[service].openapi()
    walker = Walker(DATABASE)
    undeclared, unraised, problems = {}, {}, set()
    for method, path, route in routes(apps[service]):
        operation = schema["paths"][path][method.lower()]
        effects = can_raise(walker, route)
        problems |= effects.problems
        raised = effects.raised | handlers_answers(method, operation)
        if missing := raised - declared(operation):
            undeclared[f"{method} {path}"] = by_status(missing)
        if extra := declared(operation) - raised:
            unraised[f"{method} {path}"] = by_status(extra)
    assert not problems, "codes that cannot be read from the code: make each a literal"
    assert not undeclared, (
        "raised, not declared: add them to the route's `refuses=` (enrollment) or `responses=`"
        f" (auth), and to the catalog if new: {undeclared}"
    )
    assert not unraised, f"declared, but nothing the route reaches raises them: {unraised}"


def app_functions() -> Iterator[Key]:
    """Every function and method defined in app/, with the class of a method."""
    for info in pkgutil.walk_packages(app.__path__, "app."):
        module = __import__(info.name, fromlist=["_"])
        for value in vars(module).values():
            if getattr(value, "__module__", None) != info.name:
                continue
            if inspect.isfunction(value):
                yield inspect.unwrap(value), None
            elif inspect.isclass(value):
                for member in vars(value).values():
                    fn = getattr(member, "__func__", member)
                    if inspect.isfunction(fn) and fn.__module__ == info.name:
                        yield inspect.unwrap(fn), value


@functools.cache  # two tests per service ask; walking all of app/ costs seconds
def built_in(service: str) -> frozenset[Answer]:
    """The (status, code) of every domain error built in the service's code (and app/common)."""
    walker = Walker()
    answers: set[Answer] = set()
    for key in app_functions():
        if key[0].__module__.startswith((f"app.{service}.", "app.common.")):
            effects = walker.effects_of([key])
            assert not effects.problems, "codes that cannot be read from the code"
            answers |= effects.raised | walker.table[key].returned
    return frozenset(answers)


@pytest.mark.parametrize("service", SERVICES)
def test_every_code_the_code_names_is_in_the_services_catalog(service):
    """A raise site's code is in its service's catalog (app/<service>/codes.py, or the common
    one in app/common/errors.py), at the status of the error that carries it."""
    unknown = built_in(service) - CATALOGS[service].keys()
    assert not unknown, f"add these to the catalog, with what each means: {sorted(unknown)}"


@pytest.mark.parametrize("service", SERVICES)
def test_every_code_in_a_catalog_is_answered(apps, service):
    """No catalog entry outlives its code: each is declared by a route, built in the service's
    code (a route outside the schema, service to service), or answered whatever the path."""
    schema = apps[service].openapi()
    answered = {
        answer
        for methods in schema["paths"].values()
        for operation in methods.values()
        for answer in declared(operation)
    }
    stale = CATALOGS[service].keys() - answered - built_in(service) - ANY_PATH
    assert not stale, f"in the catalog, answered nowhere: {sorted(stale)}"


@pytest.mark.parametrize("service", SERVICES)
def test_each_error_response_lists_its_codes_with_their_meanings(apps, service):
    """A client reads the codes of each status three ways, which agree: `x-codes` (code:
    meaning), the enum of ErrorOut's `code`, and the description."""
    catalog = CATALOGS[service]
    for methods in apps[service].openapi()["paths"].values():
        for operation in methods.values():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                codes = response["x-codes"]
                schema = response["content"]["application/json"]["schema"]["allOf"]
                assert schema[0] == {"$ref": "#/components/schemas/ErrorOut"}
                assert schema[1]["properties"]["code"]["enum"] == sorted(codes)
                for code, meaning in codes.items():
                    assert meaning == catalog[int(status), code]
                    assert f"- `{code}`: {meaning}" in response["description"]


def test_an_enrollment_answers_the_eligibility_rules_by_name(apps):
    """The issue's example: a client reading /openapi.json sees that POST .../enrollments may
    answer 409 `prerequisite_missing`."""
    schema = apps["enrollment"].openapi()
    refusals = schema["paths"]["/users/{user_id}/enrollments"]["post"]["responses"]["409"]
    assert {"already_enrolled", "waitlist_full", "hold", "prerequisite_missing"} <= set(
        refusals["x-codes"]
    )


def test_the_readmes_table_of_error_codes_is_the_catalogs():
    text = error_table.README.read_text()
    assert error_table.with_table(text) == text, (
        "README.md's table of error codes is not what the catalogs say: write it anew with"
        " `.venv/bin/python -m app.error_table`"
    )
