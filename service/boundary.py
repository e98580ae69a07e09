"""Where the store's exceptions become the service's: the boundary between services and store.

The store (service.decisionlog) has its own small StoreError family so it can be used on its
own (CLI, migrations). Services — DecisionService, AuditService, Catalog, jobs — are
decorated with `store_errors_translated`, so what leaves them is always a ServiceError with a
stable code, and nothing above the services needs to know the store exists.
"""
from __future__ import annotations

import functools
import inspect
import logging

from service import decisionlog, errors

log = logging.getLogger("service")
UNAVAILABLE_DETAIL = "the decision log cannot be written or read right now; nothing was decided, retry later"

_TRANSLATIONS: tuple[tuple[type[Exception], type[errors.ServiceError]], ...] = (
    (decisionlog.VersionConflict, errors.VersionConflict),
    (decisionlog.DuplicateDecision, errors.DuplicateDecision),
    (decisionlog.NotFound, errors.NotFound),
)


def translate(exc: decisionlog.StoreError) -> errors.ServiceError:
    """The ServiceError that says what this store error means to a caller."""
    if isinstance(exc, decisionlog.SchemaNotMigrated):
        return errors.StorageUnavailable(str(exc))  # the operator's next step, nothing secret
    if isinstance(exc, decisionlog.StoreUnavailable):
        # The store's own words (hosts, paths, driver messages) go to the log, not to callers.
        log.error("store unavailable: %s", exc)
        return errors.StorageUnavailable(UNAVAILABLE_DETAIL)
    for store_cls, service_cls in _TRANSLATIONS:
        if isinstance(exc, store_cls):
            return service_cls(str(exc) or service_cls.code)
    # A StoreError the table does not know is a store bug, not the caller's problem.
    return errors.Internal(f"store error: {type(exc).__name__}")


def _wrap(function):
    if inspect.isgeneratorfunction(function):
        @functools.wraps(function)
        def generator(*args, **kwargs):
            try:
                yield from function(*args, **kwargs)
            except decisionlog.StoreError as exc:
                raise translate(exc) from exc
        return generator

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except decisionlog.StoreError as exc:
            raise translate(exc) from exc
    return wrapper


def store_errors_translated(target):
    """Decorate a function, or a class (every public method), so store errors leave it translated."""
    if not isinstance(target, type):
        return _wrap(target)
    for name, member in list(vars(target).items()):
        if not name.startswith("_") and inspect.isfunction(member):
            setattr(target, name, _wrap(member))
    return target
