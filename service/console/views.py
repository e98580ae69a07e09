"""The console's pages. Each view asks for the roles its API twin needs (session.require_roles,
the API's own check), reads the same service objects the API uses, and renders HTML; every
error becomes an HTML page with its 4xx status (never a 500 for anything a form can send)."""
from __future__ import annotations

import datetime as dt
import logging
from urllib.parse import urlencode

from flask import (Blueprint, Response, current_app, redirect, render_template, request, session,
                   stream_with_context, url_for)
from werkzeug.exceptions import HTTPException

from service.api.errors import status_for
from service.audit import SearchFilters, expand_trace
from service.boundary import store_errors_translated
from service.console import features
from service.console.i18n import LANGUAGES, WORDS, language, pick, t
from service.console.render import condition_html, effect_html, rule_effect, trace_by_stage, value_text
from service.console.session import (CSRF_FIELD, CsrfRefused, SignInRequired, check_csrf, csrf_token, current_user,
                                     require_roles, sign_in, sign_out)
from service.errors import (InvalidRequest, ServiceError, Unauthenticated, Unavailable,
                            UnknownDecision, UnknownRuleset)
from service.rulesets.diff import diff_rulesets
from service.contract import OUTCOMES
from service.identifiers import DECISION_ID_RE, RULE_ID_RE, RULESET_NAME_RE, SEMVER_RE
from service.rulesets.testing import run_tests

log = logging.getLogger("service.console")

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static", static_url_path="/static")

PAGE_SIZE = 25
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; font-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")


class BadInput(Exception):
    """A form or query field the console cannot use: shown on an HTML page with status 422."""

    def __init__(self, problems: list[tuple[str, str]]):
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))
        self.problems = problems


# -- plumbing -----------------------------------------------------------------------------


def _service():
    return current_app.extensions["decisions"]


def _catalog():
    return current_app.extensions["catalog"]


def _audit():
    return current_app.extensions["audit"]


class _TranslatedStore:
    """The store as the console's feature probes read it: every call's store errors leave as
    ServiceErrors (service.boundary), so this module never needs the store's exceptions."""

    def __init__(self, store):
        self._store = store

    def __getattr__(self, name):
        value = getattr(self._store, name)
        return store_errors_translated(value) if callable(value) else value


def _store():
    return _TranslatedStore(current_app.extensions["store"])


@bp.context_processor
def _template_globals():
    return {"t": t, "pick": pick, "lang": language(), "user": current_user(), "csrf_field": CSRF_FIELD,
            "csrf_token": csrf_token, "value_text": value_text, "outcomes": OUTCOMES}


@bp.app_template_filter("console_time")
def _console_time(value) -> str:
    """A logged UTC instant shown in the bank's zone (the zone the date filters use)."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if not isinstance(value, dt.datetime):
        return "" if value is None else str(value)
    return value.astimezone(_service().clock.zone).strftime("%Y-%m-%d %H:%M:%S %z")


@bp.before_request
def _csrf_on_every_post():
    # The CSRF check sits in front of every state-changing request, so no form can forget it.
    if request.method == "POST":
        check_csrf()


@bp.after_request
def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    if not request.path.startswith("/console/static/"):
        response.headers["Cache-Control"] = "no-store"
    return response


def _error_page(status: int, title_key: str, message: str, problems=None) -> tuple[str, int]:
    return render_template("console/error.html", status=status, title=t(title_key), message=message,
                           problems=problems or []), status


@bp.errorhandler(Exception)
def _console_error(exc: Exception):
    """Every failure inside the console is an HTML page (the API's handlers answer problem+json)."""
    if isinstance(exc, SignInRequired):
        return redirect(url_for("console.signin_form", next=request.full_path.rstrip("?")))
    if isinstance(exc, CsrfRefused):
        return _error_page(403, "forbidden", t("csrf_refused"))
    if isinstance(exc, BadInput):
        return _error_page(422, "bad_input", "; ".join(m for _, m in exc.problems), exc.problems)
    if isinstance(exc, Unauthenticated):
        session.pop("tok", None)
        return redirect(url_for("console.signin_form", next=request.full_path.rstrip("?")))
    if isinstance(exc, Unavailable):
        log.error("service unavailable: %s", exc.message)
        return _error_page(503, "error", t("store_unavailable"))
    if isinstance(exc, ServiceError):
        status = _status_of(exc)  # Forbidden 403, NotFound 404, Conflict 409, Unprocessable 422, ...
        # A known code gets a sentence in the page's language before the service's own words.
        message = f"{t('err_' + exc.code)} — {exc.message}" if f"err_{exc.code}" in WORDS else exc.message
        title = {403: "forbidden", 404: "not_found"}.get(status, "error")
        return _error_page(status, title, message, [(p.path, p.message) for p in exc.problems])
    if isinstance(exc, HTTPException):
        return _error_page(exc.code or 500, "not_found" if exc.code == 404 else "error", exc.description or "")
    log.exception("console error")
    return _error_page(500, "error", "an internal error occurred; it has been logged")


def _status_of(exc: ServiceError) -> int:
    """The HTTP status the API gives this error (one mapping for both front ends)."""
    status = status_for(exc)
    return status if 400 <= status < 600 else 422


def _safe_next(target: str | None) -> str:
    # Only back into the console: never an open redirect to another site.
    if target and target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("console.decisions")


# -- sign-in, language --------------------------------------------------------------------


@bp.get("/")
def home():
    user = current_user()
    if user is None:
        return redirect(url_for("console.signin_form"))
    return redirect(url_for("console.decisions") if user.can("audit") else url_for("console.rulesets"))


@bp.get("/signin")
def signin_form():
    open_mode = current_app.config["SETTINGS"].tokens is None
    return render_template("console/signin.html", next=_safe_next(request.args.get("next")), open_mode=open_mode,
                           failed=False)


@bp.post("/signin")
def signin():
    token = request.form.get("token", "").strip()
    target = _safe_next(request.form.get("next"))
    open_mode = current_app.config["SETTINGS"].tokens is None
    if len(token) > 512:
        raise BadInput([("token", t("sign_in_failed"))])
    try:
        user = sign_in(token)
    except ServiceError:
        return render_template("console/signin.html", next=target, open_mode=open_mode, failed=True), 401
    log.info("console sign-in by %s", user.identity)
    return redirect(target if user.can("audit") or not target.startswith("/console/decisions") else
                    url_for("console.rulesets"))


@bp.post("/signout")
def signout():
    sign_out()
    return redirect(url_for("console.signin_form"))


@bp.post("/lang")
def switch_language():
    lang = request.form.get("lang", "")
    if lang not in LANGUAGES:
        raise BadInput([("lang", "zh or en")])
    session["lang"] = lang
    return redirect(_safe_next(request.form.get("next")))


# -- decisions ----------------------------------------------------------------------------


def _search_filters(args) -> dict:
    """The search form's fields as store filters; BadInput naming every bad field."""
    problems = []
    checks = {
        "application_id": (lambda v: len(v) <= 100, "at most 100 characters"),
        "ruleset": (lambda v: bool(RULESET_NAME_RE.match(v)), "a ruleset name such as sme-credit-policy"),
        "version": (lambda v: bool(SEMVER_RE.match(v)), "a version such as 1.0.0"),
        "outcome": (lambda v: v in OUTCOMES, "APPROVE, REFER or DECLINE"),
        "rule_id": (lambda v: bool(RULE_ID_RE.match(v)), "a rule id such as RF-FLOOR-STANDARD"),
    }
    filters = {}
    for name, (ok, hint) in checks.items():
        value = args.get(name, "").strip()
        if not value:
            continue
        if not ok(value):
            problems.append((name, f"{WORDS.get(name, (name, name))[1]}: {hint}"))
        filters[name] = value
    zone = _service().clock.zone
    for name, key, shift in (("from", "time_from", 0), ("to", "time_to", 1)):
        raw = args.get(name, "").strip()
        filters[key] = None
        if not raw:
            continue
        try:
            day = dt.date.fromisoformat(raw)
            # Business dates are the bank's (Asia/Shanghai); the `to` day is included.
            filters[key] = dt.datetime.combine(day + dt.timedelta(days=shift), dt.time(), zone).astimezone(dt.timezone.utc)
        except (ValueError, OverflowError):
            problems.append((name, f"{name}: a date such as 2026-01-15"))
    if problems:
        raise BadInput(problems)
    return filters


@bp.get("/decisions")
def decisions():
    require_roles("audit")
    filters = _search_filters(request.args)
    cursor = request.args.get("cursor") or None
    try:
        items, next_cursor = _audit().search(SearchFilters(**filters), limit=PAGE_SIZE, cursor=cursor, newest_first=True)
    except InvalidRequest:
        raise BadInput([("cursor", "the page link is not one this console made")]) from None
    query = {k: v for k, v in request.args.items() if k != "cursor" and v}
    return render_template("console/decisions.html", items=items, query=query, next_cursor=next_cursor,
                           first_page=cursor is None, csv_link=url_for("console.decisions_csv") + "?" + urlencode(query),
                           next_link=(url_for("console.decisions") + "?" + urlencode({**query, "cursor": next_cursor}))
                           if next_cursor else None)


@bp.get("/decisions.csv")
def decisions_csv():
    require_roles("audit")
    filters = _search_filters(request.args)
    rows = _audit().export_csv(SearchFilters(**filters))  # an outage is a 503 page before the stream starts
    return Response(stream_with_context(rows), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=decisions.csv"})


def _decision_page(decision_id: str, replay: dict | None = None):
    require_roles("audit")
    if not DECISION_ID_RE.match(decision_id):
        raise UnknownDecision(f"no decision {decision_id!r}")
    record = _audit().logged(decision_id)
    catalog = _catalog()
    try:
        ruleset = catalog.get(record.ruleset_name, record.ruleset_version).ruleset
        expanded = expand_trace(catalog, record.ruleset_name, record.ruleset_version, record.trace)
    except ServiceError:
        ruleset, expanded = None, None  # not loaded here: the stored record is still shown
    lang = language()
    stages = trace_by_stage(expanded["rules"], ruleset) if expanded else []
    used = []
    for alias, entries in ((expanded or {}).get("uses") or {}).items():
        ref = record.response.get("uses", {}).get(alias, {}).get("ruleset") or {}
        try:
            used_ruleset = catalog.get(ref.get("name"), ref.get("version")).ruleset
        except (ServiceError, TypeError):
            used_ruleset = None
        used.append({"alias": alias, "ref": ref, "stages": trace_by_stage(entries, used_ruleset),
                     "results": record.response.get("uses", {}).get(alias, {}).get("results"),
                     "reasons_by_code": used_ruleset.reasons if used_ruleset else {}})
    response = record.response
    return render_template(
        "console/decision.html", record=record, response=response, stages=stages, used=used,
        reasons_by_code=ruleset.reasons if ruleset else {}, lang=lang, expanded=expanded is not None,
        integrity=features.integrity(record, _store()), shadow=response.get("shadow") or features.shadow_of(record),
        rollout=features.rollout_of(record), replay=replay, effect_html=effect_html,
        fired_count=sum(s["fired"] for s in stages))


@bp.get("/decisions/<decision_id>")
def decision(decision_id: str):
    return _decision_page(decision_id)


@bp.post("/decisions/<decision_id>/replay")
def replay(decision_id: str):
    require_roles("audit")
    if not DECISION_ID_RE.match(decision_id):
        raise UnknownDecision(f"no decision {decision_id!r}")
    return _decision_page(decision_id, replay=_service().replay(_audit().logged(decision_id)))


# -- audit ----------------------------------------------------------------------------------


def _audit_page(report=None):
    require_roles("audit")
    store = _store()
    return render_template("console/audit.html", head=features.chain_head(store),
                           checkpoint=features.latest_checkpoint(current_app), report=report,
                           checkpoints_available=features.checkpoints_available(current_app),
                           signing_configured=features.signing_configured(current_app))


@bp.get("/audit")
def audit():
    return _audit_page()


@bp.post("/audit/verify")
def audit_verify():
    require_roles("audit")
    report = _audit().verify()
    log.info("console verify run by %s: ok=%s", current_user().identity, report["ok"])
    return _audit_page(report=report)


# -- rulesets -----------------------------------------------------------------------------


def _check_name(name: str) -> None:
    if not RULESET_NAME_RE.match(name) or len(name) > 64:
        raise UnknownRuleset(f"unknown ruleset {name!r}")


def _check_version(version: str, field: str = "version") -> None:
    if not SEMVER_RE.match(version or ""):
        raise BadInput([(field, f"{field}: a version such as 1.0.0")])


@bp.get("/rulesets")
def rulesets():
    require_roles("read")
    catalog = _catalog()
    catalog.sync()
    out = []
    for name in catalog.registry.names():
        versions = catalog.versions(name)
        out.append({"name": name, "latest": versions[-1].ruleset, "count": len(versions),
                    "statuses": [features.version_status(catalog, lv) for lv in versions]})
    return render_template("console/rulesets.html", rulesets=out)


@bp.get("/rulesets/<name>")
def ruleset_versions(name: str):
    require_roles("read")
    _check_name(name)
    catalog = _catalog()
    versions = catalog.versions(name)
    rows = {r.version: r for r in _store().list_versions(name)}
    out = []
    previous = None
    for lv in versions:
        row = rows.get(lv.version)
        out.append({"lv": lv, "rs": lv.ruleset, "status": features.version_status(catalog, lv),
                    "proposer": row.published_by if row else None,
                    "approver": features.approver(catalog, name, lv.version),
                    "published_at": row.published_at if row else None, "previous": previous})
        previous = lv.version
    return render_template("console/versions.html", name=name, versions=list(reversed(out)),
                           latest=versions[-1].ruleset)


_TEST_REPORTS: dict[str, dict] = {}  # sha256 -> report; published versions are immutable


def _test_report(lv) -> dict:
    key = lv.ruleset.sha256
    if key not in _TEST_REPORTS:
        _TEST_REPORTS[key] = (lv.test_report or run_tests(lv, _catalog().registry)).as_dict()
    return _TEST_REPORTS[key]


@bp.get("/rulesets/<name>/versions/<version>")
def ruleset_version(name: str, version: str):
    user = require_roles("read")
    _check_name(name)
    _check_version(version)
    catalog = _catalog()
    lv = catalog.get(name, version)
    rs = lv.ruleset
    lang = language()
    stages = []
    for stage in rs.stages:
        rules = [{"rule": r, "condition": condition_html(r.when, lang),
                  "effect": effect_html(rule_effect(r), rs.reasons, lang)} for r in rs.rules if r.stage == stage.id]
        stages.append({"stage": stage, "gate": condition_html(stage.gate, lang) if stage.gate else None, "rules": rules})
    report = _test_report(lv)
    status = features.version_status(catalog, lv)
    return render_template("console/version.html", name=name, lv=lv, rs=rs, stages=stages, report=report,
                           status=status, can_retire=user.can("publish") and status == "active",
                           can_review=user.can("approve") and status == "proposed",
                           history=features.history(catalog, name, version),
                           tests=list(zip(rs.tests, report["cases"])))


@bp.get("/rulesets/<name>/diff")
def ruleset_diff(name: str):
    require_roles("read")
    _check_name(name)
    catalog = _catalog()
    versions = [lv.version for lv in catalog.versions(name)]
    a, b = request.args.get("from", ""), request.args.get("to", "")
    if not a and not b and len(versions) >= 2:
        a, b = versions[-2], versions[-1]
    _check_version(a, "from")
    _check_version(b, "to")
    return render_template("console/diff.html", name=name, versions=versions, diff=_diff(catalog, name, a, b))


def _diff(catalog, name: str, a: str, b: str) -> dict:
    old, new = catalog.get(name, a).ruleset, catalog.get(name, b).ruleset
    out = diff_rulesets(old, new)
    out["old_rules"], out["new_rules"] = old.rule_map, new.rule_map
    return out


@bp.get("/rulesets/<name>/versions/<version>/retire")
def retire_form(name: str, version: str):
    require_roles("publish")
    _check_name(name)
    _check_version(version)
    lv = _catalog().get(name, version)
    return render_template("console/retire.html", name=name, lv=lv, done=False)


@bp.post("/rulesets/<name>/versions/<version>/retire")
def retire(name: str, version: str):
    user = require_roles("publish")
    _check_name(name)
    _check_version(version)
    catalog = _catalog()
    catalog.retire(name, version, user.identity)
    log.info("console: %s retired %s %s", user.identity, name, version)
    return render_template("console/retire.html", name=name, lv=catalog.get(name, version), done=True)


# -- proposals (four-eyes) -----------------------------------------------------------------


@bp.get("/proposals")
def proposals():
    user = require_roles("read")
    catalog = _catalog()
    if not features.four_eyes_available(catalog):
        return render_template("console/unavailable.html", page=t("nav_proposals"), feature="four-eyes publishing")
    return render_template("console/proposals.html", items=features.proposals(catalog, _store()),
                           can_review=user.can("approve"))


def _review_context(name: str, version: str) -> dict:
    catalog = _catalog()
    lv = catalog.get(name, version)
    base = features.version_in_force(catalog, name, lv)
    return {"name": name, "lv": lv, "status": features.version_status(catalog, lv),
            "base": base, "diff": _diff(catalog, name, base, version) if base else None,
            "history": features.history(catalog, name, version)}


@bp.get("/rulesets/<name>/versions/<version>/review")
def review_form(name: str, version: str):
    require_roles("approve")
    _check_name(name)
    _check_version(version)
    if not features.four_eyes_available(_catalog()):
        return render_template("console/unavailable.html", page=t("review"), feature="four-eyes publishing")
    return render_template("console/review.html", done=None, **_review_context(name, version))


@bp.post("/rulesets/<name>/versions/<version>/review")
def review(name: str, version: str):
    user = require_roles("approve")
    _check_name(name)
    _check_version(version)
    decision = request.form.get("decision", "")
    comment = request.form.get("comment", "").strip()
    if decision not in ("approve", "reject"):
        raise BadInput([("decision", "approve or reject")])
    if len(comment) > 2000:
        raise BadInput([("comment", "comment: at most 2000 characters")])
    catalog = _catalog()
    if not features.four_eyes_available(catalog):
        return render_template("console/unavailable.html", page=t("review"), feature="four-eyes publishing"), 404
    features.review(catalog, name, version, decision, user.identity, comment or None)
    log.info("console: %s %sd %s %s", user.identity, decision, name, version)
    return render_template("console/review.html", done=decision, **_review_context(name, version))


# -- rollouts and jobs ------------------------------------------------------------------------


@bp.get("/rollouts")
def rollouts():
    require_roles("read")
    if not features.rollouts_available(current_app):
        return render_template("console/unavailable.html", page=t("nav_rollouts"), feature="champion/challenger rollouts")
    return render_template("console/rollouts.html", items=features.rollouts(current_app))


@bp.get("/rollouts/<name>")
def rollout_report(name: str):
    require_roles("read")
    _check_name(name)
    if not features.rollouts_available(current_app):
        return render_template("console/unavailable.html", page=t("nav_rollouts"), feature="champion/challenger rollouts")
    rollout, report = features.rollout_report(current_app, name)
    return render_template("console/rollout.html", name=name, rollout=rollout, report=report)


@bp.get("/jobs")
def jobs():
    require_roles("read")
    if not features.jobs_available(current_app):
        return render_template("console/unavailable.html", page=t("nav_jobs"), feature="impact and backtest jobs")
    wanted = request.args.get("id", "").strip()
    if wanted:
        return redirect(url_for("console.job", job_id=wanted))
    return render_template("console/jobs.html", items=features.jobs(current_app))


@bp.get("/jobs/<job_id>")
def job(job_id: str):
    require_roles("read")
    if not features.jobs_available(current_app):
        return render_template("console/unavailable.html", page=t("nav_jobs"), feature="impact and backtest jobs")
    item = features.job(current_app, job_id)
    return render_template("console/job.html", job=item, running=item["status"] in ("queued", "running"))


@bp.get("/jobs/<job_id>/changes.csv")
def job_changes(job_id: str):
    require_roles("read")
    if not features.jobs_available(current_app):
        return render_template("console/unavailable.html", page=t("nav_jobs"), feature="impact and backtest jobs"), 404
    return Response(features.job_changes_csv(current_app, job_id), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename=job-{job_id}-changes.csv"})


@bp.route("/<path:anything>", methods=["GET", "POST"])
def unknown_page(anything: str):
    # Unknown console paths get the console's HTML 404 rather than the API's problem+json.
    from werkzeug.exceptions import NotFound as PageNotFound
    raise PageNotFound("no such page in the console")


__all__ = ["bp"]
