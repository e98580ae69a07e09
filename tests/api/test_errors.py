"""The one error vocabulary: every ServiceError has one stable code and one HTTP status, the
store's errors are translated at the service boundary, and the batch's per-item errors are the
same problem documents as single answers (in-process: no server needed)."""
from __future__ import annotations

import re

import pytest

from service import decisionlog, errors
from service.api.errors import STATUS_BY_KIND, problem_body, status_for
from service.boundary import store_errors_translated, translate


def _all_error_classes():
    seen, stack = [], [errors.ServiceError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return [c for c in seen if c is not errors.ServiceError]


def test_every_error_has_its_own_snake_case_code():
    classes = [c for c in _all_error_classes() if c.__module__ == "service.errors"]
    codes = [c.code for c in classes]
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", c) for c in codes), codes
    assert len(codes) == len(set(codes)), sorted(c for c in codes if codes.count(c) > 1)


def test_every_error_is_of_exactly_one_kind_with_a_status():
    kinds = [kind for kind, _ in STATUS_BY_KIND]
    for cls in _all_error_classes():
        if cls in kinds:
            continue
        matching = [k for k in kinds if issubclass(cls, k)]
        assert len(matching) == 1, f"{cls.__name__} is of kinds {matching}"


@pytest.mark.parametrize("error, status", [
    (errors.MalformedJson("x"), 400), (errors.Unauthenticated("x"), 401), (errors.Forbidden("x"), 403),
    (errors.UnknownRuleset("x"), 404), (errors.UnknownDecision("x"), 404), (errors.VersionConflict("x"), 409),
    (errors.DuplicateDecision("x"), 409), (errors.TooLarge("x"), 413), (errors.UnsupportedMedia("x"), 415),
    (errors.InvalidInput("x"), 422), (errors.InvalidRuleset("x"), 422), (errors.RulesetUnavailable("x"), 422),
    (errors.UnresolvableDependency("x"), 422), (errors.EvaluationError("x"), 422),
    (errors.StorageUnavailable("x"), 503), (errors.NotReady("x"), 503),
])
def test_status_of_each_error(error, status):
    assert status_for(error) == status


def test_problem_body_carries_code_type_and_prefixed_paths():
    exc = errors.InvalidInput("bad", [errors.Problem("invalid_input", "input.amount", "too big"),
                                      errors.Problem("invalid_request", "", "must be an object")])
    body = problem_body(exc, path_prefix="items.7.")
    assert body["code"] == "invalid_input" and body["status"] == 422 and body["detail"] == "bad"
    assert body["type"].endswith("/invalid-input") and body["title"] == "Unprocessable Content"
    assert [e["path"] for e in body["errors"]] == ["items.7.input.amount", "items.7"]
    assert "errors" not in problem_body(errors.UnknownRuleset("no such ruleset"))


def test_internal_errors_do_not_show_their_message():
    body = problem_body(errors.Internal("secret detail of a bug"))
    assert body["status"] == 500 and "secret" not in body["detail"]


@pytest.mark.parametrize("store_error, expected, code", [
    (decisionlog.StoreUnavailable("connection to 10.0.0.5 refused"), errors.StorageUnavailable, "store_unavailable"),
    (decisionlog.SchemaNotMigrated("run migrate"), errors.StorageUnavailable, "store_unavailable"),
    (decisionlog.VersionConflict("x 1.0.0 differs"), errors.VersionConflict, "version_conflict"),
    (decisionlog.DuplicateDecision("dup"), errors.DuplicateDecision, "duplicate_decision"),
    (decisionlog.NotFound("x 1.0.0 is not published"), errors.NotFound, "not_found"),
])
def test_store_errors_are_translated(store_error, expected, code):
    translated = translate(store_error)
    assert type(translated) is expected and translated.code == code
    if isinstance(store_error, decisionlog.SchemaNotMigrated):
        assert "migrate" in translated.message
    if type(store_error) is decisionlog.StoreUnavailable:
        assert "10.0.0.5" not in translated.message  # the store's words go to the log only


def test_decorated_services_only_raise_service_errors():
    @store_errors_translated
    class Service:
        def call(self):
            raise decisionlog.StoreUnavailable("down")

        def stream(self):
            yield 1
            raise decisionlog.VersionConflict("changed")

    with pytest.raises(errors.StorageUnavailable):
        Service().call()
    stream = Service().stream()
    assert next(stream) == 1
    with pytest.raises(errors.VersionConflict):
        next(stream)
