"""Which sessions a call selects."""

import pytest
from salt.exceptions import SaltInvocationError

from saltext_win_iscsi import selection


def session(sid="s1", target="iqn.1991-05.com.contoso:db-01", persistent=True, portal=None):
    data = {
        "SessionIdentifier": sid,
        "TargetNodeAddress": target,
        "InitiatorNodeAddress": "iqn.1991-05.com.contoso:host",
        "IsPersistent": persistent,
    }
    if portal:
        data["Connections"] = [{"TargetAddress": portal[0], "TargetPortNumber": portal[1]}]
    return data


def test_ids_are_exact_and_case_insensitive():
    select = selection.Selector(session_identifier="S1, s2")
    assert select.ids == ["S1", "s2"]
    assert select(session("s1")) and not select(session("s10"))
    assert select.missing_ids([session("s1")]) == ["s2"]


def test_globs_on_target_and_initiator():
    assert selection.Selector(target_node_address="IQN.1991-05.com.contoso:db-*")(session())
    assert not selection.Selector(target_node_address="*:web-*")(session())
    assert selection.Selector(target_node_address=["*:web-*", "*:db-0?"])(session())
    assert not selection.Selector(initiator_node_address="*:other")(session())


def test_filters_narrow_each_other():
    select = selection.Selector(session_identifier="s1", target_node_address="*:web-*")
    assert not select(session("s1"))


def test_portal_forms():
    v4 = session(portal=("10.0.0.5", 3260))
    v6 = session(portal=("fe80::1", 3260))
    assert selection.Selector(target_portal="10.0.0.5")(v4)
    assert selection.Selector(target_portal="10.0.0.*:3260")(v4)
    assert not selection.Selector(target_portal="10.0.0.5:860")(v4)
    assert selection.Selector(target_portal="[fe80::1]:3260")(v6)
    assert not selection.Selector(target_portal="10.*")(session())
    assert selection.Selector(target_portal="10.*").needs_connections


def test_is_persistent():
    assert selection.Selector(is_persistent=False)(session(persistent=False))
    assert not selection.Selector(is_persistent=False)(session())


def test_sessions_input_objects():
    select = selection.Selector(sessions=[session("a"), session("b")])
    assert select.ids == ["a", "b"]
    assert selection.Selector(sessions=session("c")).ids == ["c"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"session_identifier": 5.5}, "session_identifier must be a string or a list"),
        ({"session_identifier": ["a", {"b": 5}]}, "must hold strings"),
        ({"session_identifier": " , "}, "empty value"),
        ({"session_identifier": []}, "is empty"),
        ({"target_node_address": ""}, "empty value"),
        ({"target_portal": {"a": 1}}, "target_portal must be"),
        ({"sessions": []}, "non-empty list"),
        ({"sessions": ["abc"]}, "SessionIdentifier"),
        ({"is_persistent": "yes"}, "True or False"),
    ],
)
def test_malformed_selectors(kwargs, message):
    with pytest.raises(SaltInvocationError, match=message):
        selection.Selector(**kwargs)


def test_empty_selector():
    assert selection.Selector().empty
    assert selection.Selector(is_persistent=True).empty
    assert not selection.Selector(target_node_address="*").empty


def test_numeric_session_ids_are_ids():
    """open-iscsi's session ids are numbers; salt's CLI turns ``session_identifier=3`` into 3."""
    assert selection.Selector(session_identifier=3).ids == ["3"]
    assert selection.Selector(session_identifier=[1, "2"]).ids == ["1", "2"]
    with pytest.raises(SaltInvocationError):
        selection.Selector(session_identifier=True)
