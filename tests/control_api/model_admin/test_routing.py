"""The canary split as a function: shares, stickiness and rollback, without a server."""

from __future__ import annotations

from datetime import datetime

from control_api.model_admin.rollout_policy import CANARY, ROLLED_BACK, Policy
from control_api.model_admin.routing import bucket, version_for


def policy(percent: float, state: str = CANARY, model: str = "resnet50") -> Policy:
    return Policy(
        model=model,
        stable="1.0",
        canary="2.0",
        canary_percent=percent,
        shadow_version=None,
        shadow_percent=0.0,
        guard=None,
        state=state,
        reason=None,
        failed_checks=0,
        last_check_at=None,
        revision=1,
        updated_at=datetime(2026, 1, 1),
        updated_by="admin",
    )


def test_ten_percent_of_500_requests_from_100_users_within_4_points() -> None:
    split = policy(10)
    requests = [user for user in range(1, 101) for _ in range(5)]

    answered = [version_for(split, user) for user in requests]

    share = 100 * answered.count("2.0") / len(answered)
    assert len(answered) == 500 and abs(share - 10) <= 4, share


def test_shares_hold_over_many_users() -> None:
    for percent in (1, 10, 25, 50, 90):
        split = policy(percent)
        share = 100 * sum(version_for(split, user) == "2.0" for user in range(20_000)) / 20_000
        assert abs(share - percent) <= 1, (percent, share)


def test_a_user_always_gets_the_same_version() -> None:
    split = policy(30)

    first = {user: version_for(split, user) for user in range(1000)}

    for _ in range(3):
        assert {user: version_for(split, user) for user in range(1000)} == first


def test_raising_the_share_only_moves_users_to_the_canary() -> None:
    before = {user: version_for(policy(10), user) for user in range(2000)}
    after = {user: version_for(policy(30), user) for user in range(2000)}

    assert all(after[user] == "2.0" for user, version in before.items() if version == "2.0")


def test_edges_and_rollback() -> None:
    users = range(2000)
    assert {version_for(policy(0), user) for user in users} == {"1.0"}
    assert {version_for(policy(100), user) for user in users} == {"2.0"}
    assert {version_for(policy(100, state=ROLLED_BACK), user) for user in users} == {"1.0"}


def test_models_split_users_independently() -> None:
    a = {user for user in range(5000) if bucket("resnet50", user) < 1000}
    b = {user for user in range(5000) if bucket("other", user) < 1000}
    assert a != b and 0 < len(a & b) < len(a)
