"""Human approval of a promotion (include/ops/approval.py): which versions wait, what a HITL answer means,
and what a decision does to the registry (version tags, champion, alias history)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ops import alias_history_support

ALICE = {"id": "alice", "name": "Alice"}


def registry(ct_env: Path, n: int = 2):
    """Settings and ``n`` registered versions with a real checkpoint file each; v1 is champion."""
    from include.ops import tracking

    settings, mlc, results = alias_history_support.registry(ct_env, n)
    tracking.apply_gate(settings, "1", results[0], 0.8, 0.9)
    return settings, mlc, results


def failed_gate(settings, result):
    from include.ops import tracking

    return tracking.apply_gate(
        settings, result["version"], {**result, "accuracies": {result["task_id"]: 0.1}}, 0.8, 0.9
    )


def champion(settings, mlc) -> str:
    return str(mlc.get_model_version_by_alias(settings.registered_model, "champion").version)


def test_run_mode_and_which_versions_wait():
    from include.ops import approval
    from include.ops.settings import Settings

    off, on = Settings(promotion_approval="off"), Settings(promotion_approval="on")
    assert [approval.run_mode(s, None) for s in (off, on)] == ["off", "on"]
    assert [approval.run_mode(s, True) for s in (off, on)] == ["always", "always"]
    assert [approval.run_mode(s, False) for s in (off, on, Settings(promotion_approval="always"))] == [
        "off",
        "on",
        "on",
    ]
    assert Settings(promotion_approval="true").promotion_approval == "on"  # YAML's unquoted `on`
    failed = {"version": "2", "task_id": "t", "passed": False, "alias": "challenger", "reasons": ["low"]}
    held = {"version": "3", "task_id": "u", "passed": True, "alias": "challenger", "reasons": []}
    promoted = {"version": "4", "task_id": "v", "passed": True, "alias": "champion", "reasons": []}
    assert approval.pending_versions([failed, held, promoted], "off") == []
    assert approval.pending_versions([failed, held, promoted], "on") == [failed, held]
    assert approval.pending_versions([promoted], "always") == []


def test_a_hitl_answer_becomes_a_decision():
    from include.ops import approval

    ok = approval.decide(["Approve"], {"comment": " retention dip is a known label fix "}, ALICE)
    assert (ok.outcome, ok.user, ok.comment) == (
        "approved",
        "Alice (alice)",
        "retention dip is a known label fix",
    )
    blank = approval.decide(["Approve"], {"comment": "  "}, ALICE)
    assert (blank.outcome, blank.user, blank.comment) == ("rejected", "Alice (alice)", approval.NO_COMMENT)
    assert approval.decide(["Reject"], {"comment": None}, ALICE).outcome == "rejected"
    # the scheduler's timeout sweep answers with the defaults (Reject) and no user
    late = approval.decide(["Reject"], {"comment": None}, None, timed_out=True)
    assert (late.outcome, late.user) == ("timeout", None)
    assert (
        approval.decide(["Approve"], {"comment": "x"}, None).outcome == "timeout"
    )  # no user: never approved


def test_an_approval_promotes_tags_and_appends_to_the_alias_history(ct_env: Path):
    from include.ops import alias_history, approval
    from include.ops.champion_record import read_champion_record

    settings, mlc, results = registry(ct_env)
    pending = [failed_gate(settings, results[1]).to_dict()]
    assert champion(settings, mlc) == "1"
    decision = approval.decide(
        ["Approve"], {"comment": "accepted regression"}, ALICE, responded_at="2026-12-03T10:00:00Z"
    )
    out = approval.apply_decision(settings, pending, decision, dag_id="continual_training", dag_run_id="r1")
    assert champion(settings, mlc) == "2"
    tags = mlc.get_model_version(settings.registered_model, "2").tags
    assert (tags["approval"], tags["approval.user"], tags["approval.comment"], tags["gate"]) == (
        "approved", "Alice (alice)", "accepted regression", "failed",
    )  # fmt: skip
    last = alias_history.read_history(settings)[-1]
    assert (last.kind, last.from_version, last.to_version, last.approver, last.dag_run_id) == (
        "approval", "1", "2", "Alice (alice)", "r1",
    )  # fmt: skip
    assert "accepted regression" in last.reason and out[0]["history_seq"] == last.seq
    assert read_champion_record(settings).version == "2"


@pytest.mark.parametrize("timed_out", [False, True], ids=["rejected", "timeout"])
def test_a_rejection_or_timeout_keeps_the_champion_and_is_tagged(ct_env: Path, timed_out: bool):
    from include.ops import alias_history, approval

    settings, mlc, results = registry(ct_env)
    pending = [failed_gate(settings, results[1]).to_dict()]
    before = len(alias_history.read_history(settings))
    user = None if timed_out else ALICE
    decision = approval.decide(["Reject"], {"comment": "not this one"}, user, timed_out=timed_out)
    approval.apply_decision(settings, pending, decision)
    assert champion(settings, mlc) == "1"
    tags = mlc.get_model_version(settings.registered_model, "2").tags
    assert tags["approval"] == ("timeout" if timed_out else "rejected")
    assert ("approval.user" in tags) is not timed_out  # a timeout is nobody's decision
    assert len(alias_history.read_history(settings)) == before  # no alias moved


def test_always_mode_holds_a_passing_version_as_challenger(ct_env: Path):
    from include.ops import approval, tracking

    settings, mlc, results = registry(ct_env)
    held = tracking.apply_gate(settings.replace(promotion_approval="always"), "2", results[1], 0.8, 0.9)
    assert (held.passed, held.alias, champion(settings, mlc)) == (True, "challenger", "1")
    assert approval.pending_versions([held.to_dict()], "always") == [held.to_dict()]
    from include.ops import alias_history

    entry = alias_history.read_history(settings)[-1]  # the history says why it waits, not "gate failed"
    assert (entry.alias, entry.to_version) == ("challenger", "2")
    assert entry.reason == f"gate passed for {results[1]['task_id']}, held for approval"


def test_an_approved_version_with_a_tampered_checkpoint_is_not_promoted(ct_env: Path):
    from include.ops import approval
    from include.ops.errors import Refusal

    settings, mlc, results = registry(ct_env)
    pending = [failed_gate(settings, results[1]).to_dict()]
    Path(results[1]["checkpoint_path"]).write_bytes(b"tampered")
    with pytest.raises(Refusal, match="sha256"):
        approval.apply_decision(settings, pending, approval.decide(["Approve"], {"comment": "ok"}, ALICE))
    assert champion(settings, mlc) == "1"
