"""The sandbox carrier (Kuaidi100 protocol) served by uvicorn, pushing to a real HTTP receiver.

Signatures are checked with an independent MD5 over the raw `param` text that crossed the
socket, never with the sandbox's own helpers.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
import uvicorn

from sandbox.carrier import CARRIERS, create_app
from tests.support.receiver import Receiver

KEY = "test-kuaidi100-key"
CUSTOMER = "TESTCUSTOMER0001"
SALT = "s3cr3t-salt"
ACCEPT = json.dumps({"result": True, "returnCode": "200", "message": "成功"}).encode()
WAIT = 5.0


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest().upper()


@contextmanager
def carrier(data_dir: Path) -> Iterator[httpx.Client]:
    """Serve the carrier on a free port in a thread; yield a client bound to it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    app = create_app(data_dir, key=KEY, customer=CUSTOMER)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "carrier did not start"
        time.sleep(0.02)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        with httpx.Client(base_url=url, timeout=WAIT) as client:
            client.post("/sandbox/control", json={"push_retry_ms": 100})
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=WAIT)
        sock.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as started:
        started.reply = ACCEPT
        yield started


def subscribe(
    client: httpx.Client,
    company: str,
    number: str,
    url: str,
    *,
    salt: str | None = SALT,
    **extra: Any,
) -> dict[str, Any]:
    parameters = {"callbackurl": url, **({"salt": salt} if salt else {})}
    param = {"company": company, "number": number, "key": KEY, "parameters": parameters, **extra}
    response = client.post("/poll", data={"schema": "json", "param": json.dumps(param)})
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


def query(client: httpx.Client, com: str, num: str, **extra: Any) -> httpx.Response:
    param = json.dumps({"com": com, "num": num, **extra}, ensure_ascii=False)
    sign = md5(param + KEY + CUSTOMER)
    return client.post("/poll/query.do", data={"customer": CUSTOMER, "sign": sign, "param": param})


def new_shipment(client: httpx.Client, company: str = "shunfeng") -> str:
    response = client.post("/sandbox/shipments", json={"company": company})
    assert response.status_code == 201
    number: str = response.json()["number"]
    assert CARRIERS[company].accepts(number)
    return number


def advance(client: httpx.Client, company: str, number: str, to: str | None = None) -> Any:
    body = {"to": to} if to else None
    response = client.post(f"/sandbox/shipments/{company}/{number}/advance", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def pushed(received: Any) -> tuple[dict[str, Any], str, str | None]:
    """A push's decoded param, its raw text and its sign, from the bytes received."""
    form = dict(parse_qsl(received.body.decode()))
    assert received.headers["content-type"].startswith("application/x-www-form-urlencoded")
    return json.loads(form["param"]), form["param"], form.get("sign")


def test_pushes_carry_the_whole_trail_signed_with_the_salt(
    tmp_path: Path, receiver: Receiver
) -> None:
    with carrier(tmp_path) as client:
        number = new_shipment(client)
        assert subscribe(client, "shunfeng", number, receiver.url) == {
            "result": True,
            "returnCode": "200",
            "message": "提交成功",
        }
        advance(client, "shunfeng", number)
        receiver.wait_for(1, WAIT)
        advance(client, "shunfeng", number)
        receiver.wait_for(2, WAIT)
        final = advance(client, "shunfeng", number, to="delivered")
        pushes = [pushed(r) for r in receiver.wait_for(3, WAIT)]
        for _, raw, sign in pushes:
            assert sign == md5(raw + SALT)
        states = [
            (p["status"], p["lastResult"]["state"], len(p["lastResult"]["data"]))
            for p, _, _ in pushes
        ]
        assert states == [("polling", "1", 1), ("polling", "0", 2), ("shutdown", "3", 4)]
        last = pushes[-1][0]["lastResult"]
        assert (last["com"], last["nu"], last["ischeck"]) == ("shunfeng", number, "1")
        assert [event["status"] for event in last["data"]] == ["签收", "派件", "在途", "揽收"]
        times = [event["time"] for event in last["data"]]
        assert times == sorted(times, reverse=True) and len(set(times)) == 4
        assert {"context", "time", "ftime"} <= set(last["data"][0])
        assert final["trail"] == last["data"]
        assert client.post(f"/sandbox/shipments/shunfeng/{number}/advance").status_code == 409
        time.sleep(0.3)
        assert len(receiver.requests) == 3
        assert {p["delivery"] for p in client.get("/sandbox/pushes").json()["pushes"]} == {
            "delivered"
        }


def test_subscription_refusals_use_kuaidi100_codes(tmp_path: Path, receiver: Receiver) -> None:
    with carrier(tmp_path) as client:
        url = receiver.url
        assert subscribe(client, "nosuchco", "SF1234567890123", url)["returnCode"] == "700"
        bad_number = subscribe(client, "yuantong", "SF1234567890123", url)
        assert (bad_number["result"], bad_number["returnCode"]) == (False, "700")
        assert subscribe(client, "ems", "12345", url)["returnCode"] == "700"
        assert subscribe(client, "ems", "EA123456789CN", "ftp://x")["returnCode"] == "700"
        param = {"company": "ems", "number": "EA123456789CN", "key": "wrong"}
        param["parameters"] = {"callbackurl": url}  # type: ignore[assignment]
        answer = client.post("/poll", data={"schema": "json", "param": json.dumps(param)})
        assert answer.json()["returnCode"] == "600"
        assert client.post("/poll", data={"param": "not json"}).json()["returnCode"] == "700"
        # A number the sandbox never saw is accepted and tracked, lower case or not.
        assert subscribe(client, "ems", "ea123456789cn", url)["returnCode"] == "200"
        duplicate = subscribe(client, "ems", "EA123456789CN", url)
        assert duplicate == {"result": False, "returnCode": "501", "message": "重复订阅"}
        assert client.get("/sandbox/shipments/ems/EA123456789CN").json()["subscribed"] is True
        # Once tracking ended (shutdown), a new subscription is taken and hears the trail.
        advance(client, "ems", "EA123456789CN", to="delivered")
        receiver.wait_for(1, WAIT)
        assert subscribe(client, "ems", "EA123456789CN", url)["returnCode"] == "200"
        again, _, _ = pushed(receiver.wait_for(2, WAIT)[1])
        assert again["status"] == "shutdown" and len(again["lastResult"]["data"]) == 4


def test_the_real_time_query_answers_the_trail_and_refuses_as_documented(
    tmp_path: Path,
) -> None:
    with carrier(tmp_path) as client:
        number = new_shipment(client, "jd")
        assert query(client, "jd", number).json()["returnCode"] == "500"  # no events yet
        advance(client, "jd", number, to="in_transit")
        answer = query(client, "jd", number).json()
        assert (answer["status"], answer["state"], answer["com"], answer["nu"]) == (
            "200",
            "0",
            "jd",
            number,
        )
        assert [event["status"] for event in answer["data"]] == ["在途", "揽收"]
        ascending = query(client, "jd", number, order="asc").json()["data"]
        assert ascending == list(reversed(answer["data"]))
        param = json.dumps({"com": "jd", "num": number})
        wrong = client.post(
            "/poll/query.do",
            data={"customer": CUSTOMER, "sign": md5(param + "nokey" + CUSTOMER), "param": param},
        ).json()
        assert wrong == {"result": False, "returnCode": "503", "message": "验证签名失败"}
        stranger = {"customer": "SOMEONE", "sign": md5(param + KEY + "SOMEONE"), "param": param}
        assert client.post("/poll/query.do", data=stranger).json()["returnCode"] == "400"
        assert client.post("/poll/query.do", data={"param": param}).json()["returnCode"] == "400"
        assert query(client, "nosuchco", number).json()["returnCode"] == "400"
        assert query(client, "jd", "JD0000000000000").json()["returnCode"] == "500"
        assert query(client, "jd", "12345678").json()["returnCode"] == "500"


def test_fault_switches_do_what_they_say(tmp_path: Path, receiver: Receiver) -> None:
    with carrier(tmp_path) as client:
        number = new_shipment(client, "yuantong")
        subscribe(client, "yuantong", number, receiver.url)
        client.post("/sandbox/control", json={"drop_push_next": 1})
        advance(client, "yuantong", number)  # picked up: dropped
        client.post("/sandbox/control", json={"duplicate_push_next": 1})
        advance(client, "yuantong", number)  # in transit: twice
        first, second = (pushed(r) for r in receiver.wait_for(2, WAIT))
        assert first[1] == second[1] and first[0]["lastResult"]["state"] == "0"
        assert len(first[0]["lastResult"]["data"]) == 2  # the dropped event is in the trail
        client.post("/sandbox/control", json={"stale_push_next": 1})
        advance(client, "yuantong", number)  # out for delivery, then the older trail again
        newer, older = (pushed(r)[0] for r in receiver.wait_for(4, WAIT)[2:])
        assert newer["lastResult"]["state"] == "5" and len(newer["lastResult"]["data"]) == 3
        assert older["lastResult"]["state"] == "0" and len(older["lastResult"]["data"]) == 2
        client.post("/sandbox/control", json={"wrong_salt_next": 1})
        advance(client, "yuantong", number)
        _, raw, sign = pushed(receiver.wait_for(5, WAIT)[4])
        assert sign is not None and sign != md5(raw + SALT)
        deliveries = [p["delivery"] for p in client.get("/sandbox/pushes").json()["pushes"]]
        assert deliveries.count("dropped") == 1 and len(deliveries) == 6

        client.post("/sandbox/control", json={"query_fail_next": 1})
        assert query(client, "yuantong", number).json() == {
            "result": False,
            "returnCode": "502",
            "message": "服务器繁忙",
        }
        client.post("/sandbox/control", json={"query_http_error_next": 1})
        assert query(client, "yuantong", number).status_code == 503
        assert query(client, "yuantong", number).json()["state"] == "3"
        control = client.post("/sandbox/control", json={"reset": True}).json()
        assert control["push_max_attempts"] == 4 and control["query_fail_next"] == 0


def test_a_push_not_accepted_is_retried_then_given_up(tmp_path: Path, receiver: Receiver) -> None:
    with carrier(tmp_path) as client:
        number = new_shipment(client, "zhongtong")
        subscribe(client, "zhongtong", number, receiver.url, salt=None)
        receiver.answer(500)
        advance(client, "zhongtong", number)
        receiver.wait_for(2, WAIT)  # a 500, then accepted
        deadline = time.monotonic() + WAIT
        while client.get("/sandbox/pushes").json()["pushes"][0]["delivery"] != "delivered":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        form = dict(parse_qsl(receiver.requests[1].body.decode()))
        assert "sign" not in form  # no salt, no sign
        receiver.reply = b'{"result": false, "returnCode": "500"}'
        client.post("/sandbox/control", json={"push_max_attempts": 3})
        advance(client, "zhongtong", number)
        receiver.wait_for(5, WAIT)
        time.sleep(0.4)
        assert len(receiver.requests) == 5
        pushes = client.get("/sandbox/pushes").json()["pushes"]
        assert [(p["delivery"], p["attempts"]) for p in pushes] == [("delivered", 2), ("failed", 3)]


def test_shipments_and_subscriptions_survive_a_restart(tmp_path: Path, receiver: Receiver) -> None:
    with carrier(tmp_path) as client:
        number = new_shipment(client, "yunda")
        subscribe(client, "yunda", number, receiver.url)
        before = advance(client, "yunda", number, to="in_transit")
        receiver.wait_for(1, WAIT)
    with carrier(tmp_path) as client:
        assert client.get(f"/sandbox/shipments/yunda/{number}").json() == before
        assert subscribe(client, "yunda", number, receiver.url)["returnCode"] == "501"
        assert query(client, "yunda", number).json()["data"] == before["trail"]
        advance(client, "yunda", number)
        latest, raw, sign = pushed(receiver.wait_for(2, WAIT)[1])
        assert sign == md5(raw + SALT) and len(latest["lastResult"]["data"]) == 3


def test_python_m_sandbox_carrier_serves(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "SANDBOX_CARRIER_PORT": str(port),
        "SANDBOX_DATA_DIR": str(tmp_path),
    }
    bad = subprocess.run(
        [sys.executable, "-m", "sandbox.carrier"],
        env={**env, "SANDBOX_CARRIER_PORT": "eighty"},
        capture_output=True,
        timeout=30,
    )
    assert bad.returncode == 2 and b"SANDBOX_CARRIER_PORT" in bad.stderr
    process = subprocess.Popen([sys.executable, "-m", "sandbox.carrier"], env=env)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert (tmp_path / "carrier.sqlite").exists()
