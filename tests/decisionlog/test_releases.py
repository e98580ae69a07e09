"""Release records on both backends: proposed -> approved/rejected, four eyes, append-only
history, rollouts — each change bumping the registry generation other instances watch."""
from __future__ import annotations

import pytest

from service.decisionlog import NotFound, StoreUnavailable
from service.decisionlog.releases import TransitionRefused

SHA = "a" * 64


def propose(store, version="1.1.0", who="li.wei"):
    row, created = store.publish_version("toy", version, SHA if version == "1.1.0" else "b" * 64, "{}", "text", "yaml",
                                         who, after_insert=store.propose_hook("toy", version, who, "Q3 floor"))
    assert created
    return row


def test_a_proposed_version_turns_active_only_with_enough_distinct_approvers(store):
    propose(store)
    assert store.release_states()[("toy", "1.1.0")].status == "proposed"
    with pytest.raises(TransitionRefused) as refused:
        store.approve_version("toy", "1.1.0", "li.wei", None, needed=2)
    assert refused.value.reason == "self_approval"
    first = store.approve_version("toy", "1.1.0", "wang.fang", "ok", needed=2)
    assert first.state.status == "proposed" and first.approvers == ["wang.fang"]
    with pytest.raises(TransitionRefused) as again:
        store.approve_version("toy", "1.1.0", "wang.fang", None, needed=2)
    assert again.value.reason == "self_approval"
    generation = store.registry_generation()
    second = store.approve_version("toy", "1.1.0", "zhao.min", None, needed=2)
    assert second.state.status == "active" and second.approvers == ["wang.fang", "zhao.min"]
    assert store.registry_generation() > generation
    with pytest.raises(TransitionRefused) as done:
        store.approve_version("toy", "1.1.0", "qian.li", None, needed=2)
    assert done.value.reason == "not_proposed"
    events = [(e.event, e.identity, e.comment) for e in store.release_history("toy", "1.1.0")]
    assert events == [("proposed", "li.wei", "Q3 floor"), ("approved", "wang.fang", "ok"),
                      ("approved", "zhao.min", None), ("activated", "zhao.min", None)]


def test_rejected_is_terminal_and_ends_a_rollout_naming_it(store):
    propose(store)
    store.set_rollout("toy", "1.1.0", "shadow", None, None, "wang.fang")
    assert store.reject_version("toy", "1.1.0", "wang.fang", "floor too strict").status == "rejected"
    assert store.list_rollouts() == {}
    for transition in (lambda: store.approve_version("toy", "1.1.0", "zhao.min", None, 1),
                       lambda: store.reject_version("toy", "1.1.0", "zhao.min", None)):
        with pytest.raises(TransitionRefused):
            transition()
    assert [e.event for e in store.release_history("toy", "1.1.0")] == [
        "proposed", "rollout_started", "rejected", "rollout_ended"]


def test_unknown_and_unproposed_versions(store):
    with pytest.raises(NotFound):
        store.approve_version("toy", "9.9.9", "wang.fang", None, 1)
    store.publish_version("toy", "1.0.0", SHA, "{}", "t", "yaml", "shipped")  # no release row: not proposed
    with pytest.raises(TransitionRefused) as refused:
        store.approve_version("toy", "1.0.0", "wang.fang", None, 1)
    assert refused.value.reason == "not_proposed"
    with pytest.raises(NotFound):
        store.end_rollout("toy", "wang.fang")


def test_rollouts_are_one_per_ruleset_and_every_change_is_history(store):
    propose(store, "1.1.0")
    propose(store, "1.2.0")
    row, created = store.set_rollout("toy", "1.1.0", "shadow", None, None, "wang.fang")
    assert created and row.mode == "shadow"
    row, created = store.set_rollout("toy", "1.1.0", "split", "0.25", "applicant.code", "wang.fang", "a quarter")
    assert not created and store.list_rollouts()["toy"].share == "0.25"
    store.set_rollout("toy", "1.2.0", "shadow", None, None, "zhao.min")
    assert store.list_rollouts()["toy"].challenger == "1.2.0"
    ended = store.end_rollout("toy", "zhao.min")
    assert ended.challenger == "1.2.0" and store.list_rollouts() == {}
    assert [(e.event, e.comment) for e in store.release_history("toy", "1.1.0")][1:] == [
        ("rollout_started", None), ("rollout_changed", "a quarter"), ("rollout_ended", "replaced by challenger 1.2.0")]
    assert [e.event for e in store.release_history("toy", "1.2.0")] == ["proposed", "rollout_started", "rollout_ended"]


def test_history_is_append_only_in_the_database(store, target):
    propose(store)
    for statement in ("UPDATE release_events SET identity = 'mallory'", "DELETE FROM release_events"):
        with pytest.raises(Exception, match="append-only"):
            target.sql(statement)
    assert [e.identity for e in store.release_history("toy", "1.1.0")] == ["li.wei"]


def test_a_failed_publish_leaves_no_release_record(store):
    def failing_hook(conn):
        raise StoreUnavailable("simulated crash after the insert")

    with pytest.raises(StoreUnavailable):
        store.publish_version("toy", "1.3.0", SHA, "{}", "t", "yaml", "li.wei", after_insert=failing_hook)
    assert store.get_version("toy", "1.3.0") is None and store.release_states() == {}
