"""The alerter's persisted state: named and versioned, and migrated from the format before (version 1)."""

from __future__ import annotations

import pytest

from services.alerter import state
from services.alerter.engine import AlerterOutput, RulesEngine
from services.alerter.risk import RiskState
from services.alerter.ruleset import load_rules
from services.alerter.session import SessionState
from services.common.contracts import Verification
from tests.alerter.factory import scripted, settings, view

QUANTUM = ["examples.quantum_rule:QuantumUncertainty"]
VERIFICATION = Verification(
    samples=["Paris", "Lyon"], answer="Paris", temperature=1.0, exact=0.5, lexical=0.5, embedding=None, consistency=0.5
)

# Written by the alerter of commit ac83e28 (``SessionState.dumps``, version 1) for the scripted session
# fed audits 0-14 without 12 at t=100 s, then ended ("finished", 24 tokens, VERIFICATION): audits 13
# and 14 wait in the reorder buffer, four rules hold cooldowns with firings held back, the end waits
# for the missing audits until t=130 s.
V1_STATE = (
    '{"v":1,"next":12,"out":3,"stats":[12,12,10.6,2.8,12,10.6,12,9.07077771983374,12,3],"sq":[[12,12,'
    "9.07077771983374,3.0588936890535687,0.15200309344504995,12,10.6,2.8,12,10.6,2.8,null,0.5,null,0,"
    "0.0],[12,12,9.07077771983374,3.0588936890535687,0.15200309344504995,12,10.6,2.8,12,10.6,2.8,null"
    ',0.5,null,0,0.0],[true,false]],"model":"test-model","risk":["warning",5,12,[[8,1,"LOW_CONFIDENCE'
    '"],[11,2,"HIGH_UNCERTAINTY,UNCERTAINTY_SPIKE,LOW_CONFIDENCE,ANOMALY"],[12,2,"HIGH_UNCERTAINTY,UN'
    'CERTAINTY_SPIKE,LOW_CONFIDENCE,ANOMALY"]],"warning",{},0],"seen":100.0,"buf":[[100.0,"{\\"schema_'
    'version\\":1,\\"session_id\\":\\"s1\\",\\"seq\\":13,\\"ts_ns\\":1796236373522447214,\\"type\\":\\"audit\\",\\"'
    'token_id\\":null,\\"text\\":\\" w13\\",\\"distribution\\":\\"full\\",\\"metrics\\":{\\"prob\\":0.2,\\"surprisa'
    'l\\":2.321928094887362,\\"entropy\\":2.8,\\"margin\\":null,\\"rank\\":null,\\"hbar_s\\":2.8,\\"fisher_trac'
    'e\\":null,\\"varentropy\\":null,\\"coverage\\":null,\\"probe\\":null,\\"exact\\":true},\\"top_k\\":[],\\"mod'
    'el\\":\\"test-model\\",\\"token_ts_ns\\":1}"],[100.0,"{\\"schema_version\\":1,\\"session_id\\":\\"s1\\",\\"s'
    'eq\\":14,\\"ts_ns\\":1796236373522454695,\\"type\\":\\"audit\\",\\"token_id\\":null,\\"text\\":\\" w14\\",\\"d'
    'istribution\\":\\"full\\",\\"metrics\\":{\\"prob\\":0.9,\\"surprisal\\":0.15200309344504995,\\"entropy\\":0'
    '.5,\\"margin\\":null,\\"rank\\":null,\\"hbar_s\\":0.5,\\"fisher_trace\\":null,\\"varentropy\\":null,\\"cove'
    'rage\\":null,\\"probe\\":null,\\"exact\\":true},\\"top_k\\":[],\\"model\\":\\"test-model\\",\\"token_ts_ns\\"'
    ':1}"]],"rules":{"UNCERTAINTY_SPIKE":{"n":12,"b":1.3279999999999998},"ANOMALY":{"w":[500000,50000'
    '0,500000,500000,500000,500000,500000,500000,500000,500000,2800000,2800000]},"REPETITION":{"t":["'
    ' w0"," w1"," w2"," w3"," w4"," w5"," w6"," Paris"," w8"," w9"," w10"," w11"]}},"cd":{"LOW_CONFID'
    'ENCE":[10,11,16,1,0],"HIGH_UNCERTAINTY":[10,11,8,1,1],"UNCERTAINTY_SPIKE":[10,11,8,1,1],"ANOMALY'
    '":[10,11,8,1,1]},"fired":{"LOW_CONFIDENCE":3,"HIGH_UNCERTAINTY":2,"UNCERTAINTY_SPIKE":2,"ANOMALY'
    '":2},"sent":{"LOW_CONFIDENCE":2,"HIGH_UNCERTAINTY":1,"UNCERTAINTY_SPIKE":1,"ANOMALY":1},"end":["'
    'finished",24,130.0,{"samples":["Paris","Lyon"],"answer":"Paris","temperature":1.0,"exact":0.5,"l'
    'exical":0.5,"embedding":null,"consistency":0.5}]}'
)


def first_part(engine: RulesEngine, st: SessionState) -> list[AlerterOutput]:
    out: list[AlerterOutput] = []
    for a in scripted()[:15]:
        if a.seq != 12:
            out += engine.accept(st, a, 100.0)
    return out + engine.end(st, "finished", 24, 100.0, VERIFICATION)


def rest(engine: RulesEngine, st: SessionState) -> list[AlerterOutput]:
    audits = scripted()
    out: list[AlerterOutput] = []
    for a in [audits[12], *audits[15:]]:
        out += engine.accept(st, a, 101.0)
    return out


def test_a_version_1_state_goes_on_as_if_there_had_been_no_upgrade() -> None:
    """The state exactly as the alerter before version 2 wrote it: loaded, the session goes on and ends
    with the very outputs of a run that never restarted (cooldowns, buffer, end and verification kept)."""
    s = settings(python_rules=QUANTUM)
    reference = SessionState("s1")
    never_restarted = RulesEngine(load_rules(s), s)
    first_part(never_restarted, reference)
    expected = rest(never_restarted, reference)

    migrated = state.load("s1", V1_STATE)
    assert (migrated.next_seq, sorted(migrated.buffer), migrated.ending) == (
        12,
        [13, 14],
        reference.ending.__class__("finished", 24, 130.0, VERIFICATION),
    )
    assert migrated.cooldown["LOW_CONFIDENCE"] == state.Cooldown(last_alert=10, last_firing=11, span=16, suppressed=1)
    out = rest(RulesEngine(load_rules(s), s), migrated)
    assert [view(o) for o in out] == [view(o) for o in expected]
    assert out[-1].type == "summary" and out[-1].verification == VERIFICATION
    assert any("more since #10" in getattr(o, "message", "") for o in out)  # a held-back firing, counted in v1


def test_the_migrated_state_is_written_back_as_version_2() -> None:
    migrated = state.load("s1", V1_STATE)
    written = state.dump(migrated)
    assert written.startswith(b'{"version":2,')
    assert b'"v":1' not in written
    assert state.load("s1", written) == migrated


def test_the_current_format_round_trips_every_field() -> None:
    s = settings(python_rules=QUANTUM)
    st = SessionState("s1")
    first_part(RulesEngine(load_rules(s), s), st)
    assert st.buffer and st.cooldown and st.ending and st.rule_state and st.risk.recent
    loaded = state.load("s1", state.dump(st))
    st.rule_state = {k: v for k, v in st.rule_state.items() if v}  # an empty rule state is not written
    assert loaded == st
    stored = state.StoredState.model_validate_json(state.dump(st))
    assert stored.cooldown["ANOMALY"].model_dump() == {
        "last_alert": 10,
        "last_firing": 11,
        "span": 8,
        "suppressed": 1,
        "rank": 1,
    }
    assert stored.ending is not None and stored.ending.verification == VERIFICATION


def test_a_finished_session_keeps_a_named_tombstone() -> None:
    assert state.dump(SessionState("s1", done=True)) == b'{"version":2,"done":true}'
    assert state.load("s1", b'{"v": 1, "done": true}').done
    assert state.load("s1", b'{"version":2,"done":true}').done


@pytest.mark.parametrize(
    "risk",
    [
        [
            "critical",
            6,
            40,
            [[38, 2, "A,B"], [40, 4, "C"]],
            "emergency",
            {"answer": ["critical", "P(wrong) 0.9", 12, 0.9]},
            7,
        ],
        ["warning", 2, 3, [[3, 2, "A"]]],  # written before peaks, evidence and loops were kept
    ],
)
def test_version_1_risk_reads_as_the_version_1_reader_read_it(risk: list[object]) -> None:
    doc = f'{{"v":1,"next":0,"out":0,"stats":[0],"risk":{risk!r}}}'.replace("'", '"')
    assert state.load("s1", doc).risk == RiskState.from_json(risk)


@pytest.mark.parametrize(
    "data", [b'{"v": 3}', b'{"version": 3, "next_seq": 1}', b"[1, 2]", b'{"version": 2, "nxt": 1}']
)
def test_what_it_cannot_read_is_an_error(data: bytes) -> None:
    with pytest.raises(ValueError, match=r"alerter state|validation error"):
        state.load("s1", data)
