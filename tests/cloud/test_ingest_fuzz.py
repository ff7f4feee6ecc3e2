"""The ingest core never raises on any payload or topic: everything ends in a result."""

from __future__ import annotations

import cbor2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.services.ingest import ingest
from cloud.store.engine import SessionFactory
from protocol import batch as pbatch
from tests.conftest import GATEWAY_ID

cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.binary(max_size=48)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5) | st.binary(max_size=8),
                                                              inner, max_size=4),
    max_leaves=12)


def envelopes() -> st.SearchStrategy[bytes]:
    body = st.fixed_dictionaries({"gw": st.just(bytes.fromhex(GATEWAY_ID)) | st.binary(max_size=9),
                                  "bseq": st.integers(min_value=-3, max_value=2**64),
                                  "ts": st.integers(min_value=-1, max_value=2**64),
                                  "recs": st.lists(st.lists(st.binary(max_size=41), max_size=3), max_size=3)})
    return st.tuples(st.sampled_from([0, 1, 2]), body.map(cbor2.dumps) | st.binary(max_size=64),
                     st.binary(max_size=70)).map(lambda t: cbor2.dumps(list(t)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=300) | cbor_values.map(cbor2.dumps) | envelopes(),
       topic=st.sampled_from([pbatch.batch_topic(GATEWAY_ID), "mcode/v0/gw/zz/batch", "x"]))
def test_ingest_never_raises(sf: SessionFactory, payload: bytes, topic: str) -> None:
    res = ingest(sf, topic, payload)
    assert res.status in (pbatch.ACK_STORED, pbatch.ACK_QUARANTINED)
    assert (res.ack is None) == (res.gateway_id is None)
