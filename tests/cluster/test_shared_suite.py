"""Tests of `tests/server`, run here unchanged on both backends: this folder's `server` and `hub`
fixtures are parametrized over SQLite and PostgreSQL (see `conftest.py`).

The protocol (seq and HELLO, filters, commands answered once), resume, isolation of users,
REST snapshots and paging, and authentication.
"""

from __future__ import annotations

from tests.server import test_auth, test_faults, test_hub, test_isolation, test_rest

test_seq_counts_per_user_from_one_and_hello_reports_it = (
    test_hub.test_seq_counts_per_user_from_one_and_hello_reports_it
)
test_each_user_gets_only_its_own_events = test_hub.test_each_user_gets_only_its_own_events
test_topic_and_symbol_filters_and_resubscribe_replaces_them = (
    test_hub.test_topic_and_symbol_filters_and_resubscribe_replaces_them
)
test_resume_replays_exactly_what_was_missed = test_hub.test_resume_replays_exactly_what_was_missed
test_lifecycle_pages_newest_first = test_hub.test_lifecycle_pages_newest_first
test_two_users_never_receive_or_see_each_others_data = (
    test_isolation.test_two_users_never_receive_or_see_each_others_data
)
test_every_snapshot_path_answers_epoch_seq_and_data = (
    test_rest.test_every_snapshot_path_answers_epoch_seq_and_data
)
test_trade_events_page_back_newest_first = test_rest.test_trade_events_page_back_newest_first
test_snapshot_gives_many_topics_in_one_call_and_metrics_count_it = (
    test_rest.test_snapshot_gives_many_topics_in_one_call_and_metrics_count_it
)
test_rest_without_a_valid_token_is_401 = test_auth.test_rest_without_a_valid_token_is_401
test_commands_are_answered_once_each = test_faults.test_commands_are_answered_once_each
