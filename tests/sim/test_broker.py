"""The broker fixture enforces auth and per-gateway ACLs on a real Mosquitto (more in
tests/gateway/test_broker_security.py)."""

from __future__ import annotations

import json
import threading

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from cloud.mqtt import identity
from sim.broker import INGEST_WORKERS, Broker, dynsec_config
from tests.conftest import GATEWAY_ID


def _client(b: Broker, user: str, pw: str) -> mqtt.Client:
    """A gateway user with its own (bound) client id; the open stand-in "cloud" with any."""
    cid = "" if user == "cloud" else identity.gateway_client_id(user)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
    c.username_pw_set(user, pw)
    return c


def test_bad_password_refused(broker: Broker) -> None:
    c = _client(broker, GATEWAY_ID, "wrong")
    result: list[ReasonCode] = []
    done = threading.Event()

    def on_connect(cl: mqtt.Client, ud: object, fl: object, rc: ReasonCode, props: object) -> None:
        result.append(rc)
        done.set()

    c.on_connect = on_connect
    c.connect(broker.host, broker.port)
    c.loop_start()
    assert done.wait(5)
    c.loop_stop()
    assert result[0].is_failure


def test_gateway_cannot_publish_as_another(broker: Broker) -> None:
    got: list[str] = []
    ready = threading.Event()
    cloud = _client(broker, "cloud", "cloud-pw")
    cloud.on_message = lambda cl, ud, msg: got.append(msg.topic)
    cloud.on_subscribe = lambda *a: ready.set()
    cloud.connect(broker.host, broker.port)
    cloud.subscribe("mcode/v0/gw/+/batch", qos=1)
    cloud.loop_start()
    assert ready.wait(5)
    gw2 = _client(broker, "b1b2b3b4b5b6b7b8", "gw2-pw")
    gw2.connect(broker.host, broker.port)
    gw2.loop_start()
    gw2.publish(f"mcode/v0/gw/{GATEWAY_ID}/batch", b"forged", qos=1).wait_for_publish(5)
    gw2.publish("mcode/v0/gw/b1b2b3b4b5b6b7b8/batch", b"own", qos=1).wait_for_publish(5)
    deadline = threading.Event()
    for _ in range(50):
        if got:
            break
        deadline.wait(0.1)
    gw2.loop_stop()
    cloud.loop_stop()
    assert got == ["mcode/v0/gw/b1b2b3b4b5b6b7b8/batch"]


def test_plugin_config_is_private_and_holds_no_password(broker: Broker) -> None:
    conf = broker.workdir / "dynsec.json"
    assert conf.stat().st_mode & 0o777 == 0o600
    text = conf.read_text()
    assert "gw-pw" not in text and "cloud-pw" not in text
    clients = {c["username"]: c.get("clientid") for c in json.loads(text)["clients"]}
    cloud_users = identity.cloud_users("cloud", INGEST_WORKERS)
    assert set(clients) == {"cloud", *cloud_users, GATEWAY_ID, "b1b2b3b4b5b6b7b8"}
    # every user bound to its client id but the test stand-in "cloud" (Broker.open_users)
    assert clients[GATEWAY_ID] == f"gw-{GATEWAY_ID}" and clients["cloud"] is None
    assert all(clients[u] == identity.client_id("cloud-pw", u) for u in cloud_users)


@pytest.mark.parametrize("name", ["", "+", "#", "a/b", "$SYS"])
def test_a_gateway_name_that_would_widen_its_acl_is_refused(name: str) -> None:
    with pytest.raises(ValueError):
        dynsec_config({"cloud": "x", name: "y"})
