"""Finding project and addon ids in webhook payloads of any shape (exporter.web.webhook.find_ids)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config import ConfigError, ListenAddress, load_settings
from exporter.northflank.routes import valid_id
from exporter.web.webhook import MAX_DEPTH, FoundIds, WebhookSecret, find_ids

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["projectId", "addonId", "project", "addon", "id", "data", "x", "addon_id"])
            | st.text(max_size=10),
            children,
            max_size=5,
        )
    ),
    max_leaves=40,
)


@given(JSON)
@settings(max_examples=300, deadline=None)
def test_arbitrary_json_never_raises_and_yields_only_valid_ids(document: Any) -> None:
    found = find_ids(document)
    assert isinstance(found, FoundIds)
    assert all(valid_id(i) for i in (*found.projects, *found.addons))
    assert len(set(found.addons)) == len(found.addons)


@given(st.text(max_size=200))
def test_any_text_parsed_as_json_never_raises(text: str) -> None:
    try:
        document = json.loads(text)
    except ValueError:
        return
    find_ids(document)


def test_the_usual_spellings() -> None:
    assert find_ids({"data": {"projectId": "p-1", "addonId": "a-1"}}) == FoundIds(
        ("p-1",), ("a-1",), ("data", "projectId", "addonId")
    )
    nested = {"event": "addon-backup:success", "data": {"project": {"id": "p"}, "addon": {"id": "a"}}}
    assert (find_ids(nested).projects, find_ids(nested).addons) == (("p",), ("a",))
    assert find_ids({"data": {"backup": {"addon_id": "a2", "ProjectID": "p2"}}}).addons == ("a2",)
    assert find_ids({"addon": "bare-id"}).addons == ("bare-id",)


def test_ids_that_could_leave_a_path_segment_are_refused() -> None:
    for bad in ("..", ".", "", "a/b", "a b", "a\n", "x" * 129, 12, None, ["a"], {"id": "../x"}):
        assert find_ids({"data": {"addonId": bad, "addon": bad}}).addons == (), bad


def test_the_first_id_seen_comes_first() -> None:
    found = find_ids({"data": {"addon": {"id": "first"}, "other": [{"addonId": "second"}]}})
    assert found.addons == ("first", "second")


def test_deep_nesting_is_cut_not_recursed() -> None:
    document: Any = {"addonId": "deep"}
    for _ in range(MAX_DEPTH + 10):
        document = {"x": document}
    assert find_ids(document).addons == ()
    # Deeper than Python's recursion limit: still no error (the walk is iterative).
    very: Any = "leaf"
    for _ in range(5000):
        very = [very]
    assert find_ids(very) == FoundIds((), (), ())


def test_keys_logged_are_names_only() -> None:
    found = find_ids({"data": {"secret-value\nwith newline": 1, "ok_key": "the value"}})
    assert found.keys == ("data", "ok_key")


def test_secret_is_never_shown() -> None:
    secret = WebhookSecret(b"hunter2-webhook")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert secret.matches("hunter2-webhook")
    assert not secret.matches("hunter2-webhoo")
    assert not secret.matches(None)


def test_webhook_flags(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("whsec-flag-test\n")
    env = {"NF_API_TOKEN": "nf-token-for-flags"}
    settings = load_settings(["--webhook.listen-address=:10151", f"--webhook.secret-file={secret_file}"], env)
    assert settings.webhook_listen_address == ListenAddress("", 10151)
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.matches("whsec-flag-test")
    assert "whsec-flag-test" not in repr(settings)
    assert load_settings([], env).webhook_listen_address is None
    for argv in (
        ["--webhook.listen-address=:10151"],  # no secret: anyone could spend the budget
        [f"--webhook.secret-file={secret_file}"],
        ["--webhook.listen-address=:10150", f"--webhook.secret-file={secret_file}"],
        ["--webhook.listen-address=:10151", f"--webhook.secret-file={tmp_path / 'missing'}"],
    ):
        with pytest.raises(ConfigError) as error:
            load_settings(argv, env)
        assert "whsec" not in str(error.value)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        load_settings(["--webhook.listen-address=:1", f"--webhook.secret-file={tmp_path / 'empty'}"], env)
