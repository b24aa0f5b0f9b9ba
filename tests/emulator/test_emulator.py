"""The emulator over real HTTP: token endpoint, CircleService, fault switches, https and CLI."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import signal
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

import circle_bridge.emulator as emulator_pkg
from circle_bridge.emulator import (
    DEMO_CREDENTIALS,
    SEED_CIRCLES,
    Credentials,
    Emulator,
    EmulatorConfig,
    Faults,
)

TIMEOUT = httpx.Timeout(10.0)
_nonce_counter = itertools.count()


# -- helpers ------------------------------------------------------------------------------


def fresh_nonce() -> str:
    """A millisecond timestamp that no other test uses."""
    return str(int(time.time() * 1000) + next(_nonce_counter))


def sign(creds: Credentials, nonce: str, end_user_id: str | None = None) -> str:
    user = creds.end_user_id if end_user_id is None else end_user_id
    message = f"customerId={creds.customer_id}&appKey={creds.app_key}&endUserId={user}&nonce={nonce}"
    digest = hmac.new(creds.secret.strip().encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def token_url(emu: Emulator, creds: Credentials, nonce: str, signature: str | None = None) -> str:
    sig = sign(creds, nonce) if signature is None else signature
    return (
        f"{emu.token_url}?customerId={creds.customer_id}&appKey={creds.app_key}"
        f"&endUserId={creds.end_user_id}&nonce={nonce}&signature={sig}"
    )


def decode_token_body(reply: httpx.Response) -> dict[str, Any]:
    body = json.loads(reply.text)
    if isinstance(body, str):
        body = json.loads(body)
    assert isinstance(body, dict)
    return body


def fetch_token(client: httpx.Client, emu: Emulator, creds: Credentials = DEMO_CREDENTIALS) -> str:
    reply = client.get(token_url(emu, creds, fresh_nonce()))
    assert reply.status_code == 200, reply.text
    token = decode_token_body(reply)["Token"]
    assert isinstance(token, str)
    return token


def jwt_claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert isinstance(claims, dict)
    return claims


def authorize(client: httpx.Client, emu: Emulator, token: str, app_key: str | None = None) -> httpx.Response:
    key = emu.credentials.app_key if app_key is None else app_key
    return client.post(f"{emu.service_url}/v1/authorize", json={"Token": token}, headers={"x-circle-appkey": key})


def bearer_headers(token: str, app_key: str = DEMO_CREDENTIALS.app_key) -> dict[str, str]:
    return {
        "x-circle-appkey": app_key,
        "Authorization": f"Bearer {token}",
        "Accept": "application/json",
        "Content-Type": "application/json; charset=utf-8",
    }


def authorized_headers(client: httpx.Client, emu: Emulator) -> dict[str, str]:
    token = fetch_token(client, emu)
    assert authorize(client, emu, token).status_code == 200
    return bearer_headers(token)


def call(client: httpx.Client, emu: Emulator, method: str, body: object, headers: dict[str, str]) -> httpx.Response:
    return client.post(f"{emu.service_url}/v1/{method}", json=body, headers=headers)


def set_faults(client: httpx.Client, emu: Emulator, **faults: object) -> dict[str, Any]:
    reply = client.post(f"{emu.control_url}/faults", json=faults)
    assert reply.status_code == 200, reply.text
    state = reply.json()
    assert isinstance(state, dict)
    return state


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared() -> Iterator[Emulator]:
    """One emulator for the tests that flip no switches. Strict: these tests pin every rule the
    emulator can enforce; tests/emulator/test_token_app.py covers the lenient default."""
    with Emulator(EmulatorConfig(strict=True)) as emu:
        yield emu


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """An emulator of the test's own, for tests that change faults or tokens (strict, as `shared`)."""
    with Emulator(EmulatorConfig(strict=True)) as emu:
        yield emu


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=TIMEOUT, trust_env=False) as client:
        yield client


# -- public surface -----------------------------------------------------------------------


def test_public_surface_is_pinned() -> None:
    assert sorted(emulator_pkg.__all__) == sorted(
        [
            "DEMO_CREDENTIALS",
            "SEED_CIRCLES",
            "Credentials",
            "Emulator",
            "EmulatorConfig",
            "Faults",
            "main_cli",
            "run_cli",
        ]
    )


def test_demo_secret_has_characters_that_break_sloppy_encoding() -> None:
    assert {"+", "/", "="} <= set(DEMO_CREDENTIALS.secret)
    assert DEMO_CREDENTIALS.secret not in repr(DEMO_CREDENTIALS)


def test_describe_names_every_endpoint(shared: Emulator) -> None:
    info = shared.describe()
    assert set(info) == {
        "tokenUrl",
        "serviceUrl",
        "controlUrl",
        "caFile",
        "customerId",
        "appKey",
        "endUserId",
        "secret",
        "tokenTtl",
        "publicKey",
        "privateKey",
    }
    assert info["tokenUrl"] == shared.token_url
    assert shared.token_url.endswith("/api/token")
    assert info["serviceUrl"] == shared.service_url
    assert shared.service_url.startswith("http://127.0.0.1:")
    assert shared.control_url == shared.token_url.replace("/api/token", f"/_emulator/{shared.control_token}")
    assert len(shared.control_token) >= 16
    assert info["caFile"] is None
    assert info["tokenTtl"] == 600
    assert info["secret"] == DEMO_CREDENTIALS.secret


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="token_ttl"):
        EmulatorConfig(token_ttl=0)
    with pytest.raises(ValueError, match="credentials"):
        EmulatorConfig(credentials=())


# -- token endpoint -----------------------------------------------------------------------


def _nonce_whose_signature_has(char: str) -> str:
    for _ in range(1000):
        nonce = fresh_nonce()
        if char in sign(DEMO_CREDENTIALS, nonce):
            return nonce
    raise AssertionError(f"no signature with {char!r}")


def test_signature_with_raw_plus_is_accepted(shared: Emulator, client: httpx.Client) -> None:
    nonce = _nonce_whose_signature_has("+")
    url = token_url(shared, DEMO_CREDENTIALS, nonce)
    assert "+" in url.rsplit("signature=", 1)[1]  # sent as documented clients do: not encoded
    reply = client.get(url)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("application/json")


def test_percent_encoded_signature_and_values_are_accepted(shared: Emulator, client: httpx.Client) -> None:
    nonce = _nonce_whose_signature_has("+")
    creds = DEMO_CREDENTIALS
    url = (
        f"{shared.token_url}?customerId={quote(creds.customer_id, safe='')}&appKey={quote(creds.app_key, safe='')}"
        f"&endUserId={quote(creds.end_user_id, safe='')}&nonce={nonce}"
        f"&signature={quote(sign(creds, nonce), safe='')}"
    )
    assert "%2B" in url
    assert client.get(url).status_code == 200


def test_end_user_id_is_free_form_and_percent_decoded(shared: Emulator, client: httpx.Client) -> None:
    user = "Zoë Ünal+1@example.org"
    nonce = fresh_nonce()
    creds = DEMO_CREDENTIALS
    url = (
        f"{shared.token_url}?customerId={creds.customer_id}&appKey={creds.app_key}"
        f"&endUserId={quote(user, safe='')}&nonce={nonce}&signature={quote(sign(creds, nonce, user), safe='')}"
    )
    reply = client.get(url)
    assert reply.status_code == 200, reply.text
    assert jwt_claims(decode_token_body(reply)["Token"])["primarysid"] == user


def test_wrong_signature_is_401_and_not_echoed(shared: Emulator, client: httpx.Client) -> None:
    nonce = fresh_nonce()
    bad = sign(Credentials("CUST-DEMO-0001", "appkey-demo-7f3a9c", "userman", "wrong secret"), nonce)
    reply = client.get(token_url(shared, DEMO_CREDENTIALS, nonce, bad))
    assert reply.status_code == 401
    assert reply.json() == {"Message": "Invalid signature"}
    assert bad not in reply.text
    assert DEMO_CREDENTIALS.secret not in reply.text


def test_signature_over_another_end_user_is_401(shared: Emulator, client: httpx.Client) -> None:
    nonce = fresh_nonce()
    reply = client.get(token_url(shared, DEMO_CREDENTIALS, nonce, sign(DEMO_CREDENTIALS, nonce, "someone-else")))
    assert reply.status_code == 401


def test_unknown_customer_is_401(shared: Emulator, client: httpx.Client) -> None:
    stranger = Credentials("CUST-NOPE", DEMO_CREDENTIALS.app_key, "userman", DEMO_CREDENTIALS.secret)
    reply = client.get(token_url(shared, stranger, fresh_nonce()))
    assert reply.status_code == 401
    assert reply.json() == {"Message": "Unknown customerId or appKey"}


@pytest.mark.parametrize(
    "query",
    [
        "appKey={a}&customerId={c}&endUserId={u}&nonce={n}&signature={s}",  # wrong order
        "customerId={c}&appKey={a}&endUserId={u}&signature={s}&nonce={n}",  # signature not last
        "customerId={c}&appKey={a}&endUserId={u}&nonce={n}",  # missing signature
        "customerId={c}&appKey={a}&endUserId={u}&nonce={n}&signature={s}&signature={s}",  # duplicate
        "customerId={c}&appKey={a}&endUserId={u}&nonce={n}&signature={s}&extra=1",  # extra
        "customerId={c}&appKey={a}&endUserId=&nonce={n}&signature={s}",  # empty value
        "customerId={c}&appKey={a}&endUserId={u}&nonce&signature={s}",  # no '='
        "",  # nothing
    ],
)
def test_malformed_query_is_400(shared: Emulator, client: httpx.Client, query: str) -> None:
    creds, nonce = DEMO_CREDENTIALS, fresh_nonce()
    filled = query.format(
        c=creds.customer_id, a=creds.app_key, u=creds.end_user_id, n=nonce, s=quote(sign(creds, nonce), safe="")
    )
    reply = client.get(f"{shared.token_url}?{filled}" if filled else shared.token_url)
    assert reply.status_code == 400
    assert set(reply.json()) == {"Message"}


@pytest.mark.parametrize("nonce", ["12.5", "abc", "１２３", "1e12", "+123"])  # noqa: RUF001
def test_non_integer_nonce_is_400(shared: Emulator, client: httpx.Client, nonce: str) -> None:
    reply = client.get(token_url(shared, DEMO_CREDENTIALS, quote(nonce), quote(sign(DEMO_CREDENTIALS, nonce))))
    assert reply.status_code == 400


@pytest.mark.parametrize("offset", [-301, 301])
def test_stale_nonce_is_401(shared: Emulator, client: httpx.Client, offset: int) -> None:
    nonce = str(int(time.time()) + offset)
    reply = client.get(token_url(shared, DEMO_CREDENTIALS, nonce))
    assert reply.status_code == 401
    assert reply.json()["Message"].startswith("Stale nonce")


def test_random_int_nonce_is_401(shared: Emulator, client: httpx.Client) -> None:
    # ForgeRock sends new Random().nextInt(); the emulator requires a timestamp.
    assert client.get(token_url(shared, DEMO_CREDENTIALS, "-1846220315")).status_code == 401


def test_seconds_and_milliseconds_nonces_are_accepted(shared: Emulator, client: httpx.Client) -> None:
    seconds = str(int(time.time()) - 100)
    millis = str(int(time.time() * 1000) + 50_000 + next(_nonce_counter))
    assert client.get(token_url(shared, DEMO_CREDENTIALS, seconds)).status_code == 200
    assert client.get(token_url(shared, DEMO_CREDENTIALS, millis)).status_code == 200


def test_nonce_replay_is_401(shared: Emulator, client: httpx.Client) -> None:
    url = token_url(shared, DEMO_CREDENTIALS, fresh_nonce())
    assert client.get(url).status_code == 200
    replay = client.get(url)
    assert replay.status_code == 401
    assert replay.json() == {"Message": "Nonce reused"}


def test_token_method_must_be_get(shared: Emulator, client: httpx.Client) -> None:
    assert client.post(token_url(shared, DEMO_CREDENTIALS, fresh_nonce())).status_code == 405


def test_string_body_is_double_encoded_with_crlf(shared: Emulator, client: httpx.Client) -> None:
    reply = client.get(token_url(shared, DEMO_CREDENTIALS, fresh_nonce()))
    outer = json.loads(reply.text)
    assert isinstance(outer, str)
    assert outer.startswith("{\r\n  ")
    assert outer.endswith("\r\n}")
    assert set(json.loads(outer)) == {"Token"}
    # What the Node demos do: strip CRLF from the decoded string, then parse.
    assert json.loads(outer.replace("\r\n", ""))["Token"] == json.loads(outer)["Token"]


def test_object_body() -> None:
    with Emulator(EmulatorConfig(token_body="object")) as emu, httpx.Client(timeout=TIMEOUT) as client:
        reply = client.get(token_url(emu, DEMO_CREDENTIALS, fresh_nonce()))
        body = reply.json()
        assert isinstance(body, dict)
        assert set(body) == {"Token"}


def test_jwt_claims_and_lifetime(shared: Emulator, client: httpx.Client) -> None:
    before = int(time.time())
    token = fetch_token(client, shared)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "HS256", "typ": "JWT"}
    claims = jwt_claims(token)
    assert claims["exp"] - claims["iat"] == 600
    assert claims["nbf"] == claims["iat"]
    assert before <= claims["iat"] <= time.time()
    assert claims["unique_name"] == DEMO_CREDENTIALS.customer_id
    assert claims["primarysid"] == DEMO_CREDENTIALS.end_user_id
    assert claims["appkey"] == DEMO_CREDENTIALS.app_key
    assert claims["jti"] != jwt_claims(fetch_token(client, shared))["jti"]


def test_fractional_ttl_is_rounded_up() -> None:
    with Emulator(EmulatorConfig(token_ttl=2.5)) as emu, httpx.Client(timeout=TIMEOUT) as client:
        claims = jwt_claims(fetch_token(client, emu))
        assert claims["exp"] - claims["iat"] == 3


def test_several_identities() -> None:
    other = Credentials("CUST-OTHER-0002", "appkey-other-11aa", "alice", "  other secret with spaces  ")
    config = EmulatorConfig(credentials=(DEMO_CREDENTIALS, other), strict=True)  # app-key binding
    with Emulator(config) as emu, httpx.Client(timeout=TIMEOUT) as client:
        assert emu.credentials == DEMO_CREDENTIALS
        token = fetch_token(client, emu, other)  # signed with the stripped secret
        mixed = Credentials(DEMO_CREDENTIALS.customer_id, other.app_key, "alice", other.secret)
        assert client.get(token_url(emu, mixed, fresh_nonce())).status_code == 401
        # A token is good only with the appKey it was issued for.
        assert authorize(client, emu, token, DEMO_CREDENTIALS.app_key).status_code == 401
        assert authorize(client, emu, token, other.app_key).status_code == 200
        headers = bearer_headers(token, DEMO_CREDENTIALS.app_key)
        assert call(client, emu, "enumCircles", {}, headers).status_code == 401
        assert call(client, emu, "enumCircles", {}, bearer_headers(token, other.app_key)).status_code == 200


# -- CircleService ------------------------------------------------------------------------


def test_root_answers_running(shared: Emulator, client: httpx.Client) -> None:
    reply = client.get(f"{shared.service_url}/")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")  # "a simple text message"
    assert "running" in reply.text


def test_authorize_then_enumerate(shared: Emulator, client: httpx.Client) -> None:
    token = fetch_token(client, shared)
    reply = authorize(client, shared, token)
    assert reply.status_code == 200
    assert reply.json() == {"Status": {"Result": True, "Message": ""}}
    headers = bearer_headers(token)

    circles = call(client, shared, "enumCircles", {}, headers).json()
    assert circles["Status"] == {"Result": True, "Message": ""}
    assert [c["CircleId"] for c in circles["CircleMeta"]] == [c["CircleId"] for c in SEED_CIRCLES]
    assert circles["CircleMeta"][1]["CircleName"] == "Équipe Médicale – Zürich"  # noqa: RUF001
    assert circles["CircleMeta"][2]["CircleName"] == "研究チーム 🔬"
    assert all("Topics" not in c and "Member" not in c for c in circles["CircleMeta"])

    for circle in SEED_CIRCLES:
        topics = call(client, shared, "enumTopics", {"CircleId": circle["CircleId"]}, headers).json()
        listed = [{k: v for k, v in t.items() if k not in ("Messages", "Files")} for t in circle["Topics"]]
        assert topics == {"Status": {"Result": True, "Message": ""}, "Topics": listed}
        assert 2 <= len(topics["Topics"]) <= 4
        me = call(client, shared, "whoAmI", {"CircleId": circle["CircleId"]}, headers).json()
        assert me["Status"]["Result"] is True
        assert me["Locked"] is False
        assert me["MemberId"] == circle["Member"]["MemberId"]


def test_enum_topics_logical_failures(shared: Emulator, client: httpx.Client) -> None:
    headers = authorized_headers(client, shared)
    unknown = call(client, shared, "enumTopics", {"CircleId": "00000000-0000-0000-0000-000000000000"}, headers)
    assert unknown.status_code == 200
    assert unknown.json() == {"Status": {"Result": False, "Message": "Circle not found"}, "Topics": []}
    missing = call(client, shared, "enumTopics", {}, headers)
    assert missing.status_code == 200
    assert missing.json()["Status"] == {"Result": False, "Message": "CircleId is required"}
    who = call(client, shared, "whoAmI", {"CircleId": "nope"}, headers).json()
    assert who["Status"]["Result"] is False


def test_missing_or_unknown_appkey_is_401(shared: Emulator, client: httpx.Client) -> None:
    headers = authorized_headers(client, shared)
    without = {k: v for k, v in headers.items() if k != "x-circle-appkey"}
    assert call(client, shared, "enumCircles", {}, without).status_code == 401
    wrong = {**headers, "x-circle-appkey": "appkey-nope"}
    assert call(client, shared, "enumCircles", {}, wrong).status_code == 401
    token = fetch_token(client, shared)
    assert client.post(f"{shared.service_url}/v1/authorize", json={"Token": token}).status_code == 401


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwdw=="])
def test_missing_or_bad_bearer_is_401(shared: Emulator, client: httpx.Client, authorization: str | None) -> None:
    headers = {"x-circle-appkey": DEMO_CREDENTIALS.app_key}
    if authorization is not None:
        headers["Authorization"] = authorization
    reply = call(client, shared, "enumCircles", {}, headers)
    assert reply.status_code == 401
    assert reply.json() == {"Status": {"Result": False, "Message": "Unauthorized"}}


def test_token_not_authorized_is_401(shared: Emulator, client: httpx.Client) -> None:
    token = fetch_token(client, shared)
    assert call(client, shared, "enumCircles", {}, bearer_headers(token)).status_code == 401
    assert authorize(client, shared, token).status_code == 200
    assert call(client, shared, "enumCircles", {}, bearer_headers(token)).status_code == 200
    assert call(client, shared, "enumCircles", {}, bearer_headers(token.lower())).status_code == 401


def test_forged_token_fails_authorize(shared: Emulator, client: httpx.Client) -> None:
    header, payload, signature = fetch_token(client, shared).split(".")
    claims = jwt_claims(f"{header}.{payload}.{signature}")
    claims["exp"] += 3600
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    reply = authorize(client, shared, f"{header}.{forged_payload}.{signature}")
    assert reply.status_code == 401
    assert reply.json()["Status"] == {"Result": False, "Message": "Token signature is invalid"}
    assert authorize(client, shared, "not.a.token").status_code == 401
    missing = client.post(
        f"{shared.service_url}/v1/authorize", json={}, headers={"x-circle-appkey": DEMO_CREDENTIALS.app_key}
    )
    assert missing.status_code == 400


def test_expired_token_is_401() -> None:
    with Emulator(EmulatorConfig(token_ttl=1)) as emu, httpx.Client(timeout=TIMEOUT) as client:
        # A 1 s token may expire before it is authorized if it was issued late in a second.
        for _ in range(5):
            token = fetch_token(client, emu)
            if authorize(client, emu, token).status_code == 200:
                break
        else:
            raise AssertionError("could not authorize a fresh 1 s token")
        headers = bearer_headers(token)
        deadline = time.monotonic() + 5
        while (status := call(client, emu, "enumCircles", {}, headers).status_code) == 200:
            assert time.monotonic() < deadline, "the token never expired"
        assert status == 401
        reply = authorize(client, emu, token)
        assert reply.status_code == 401
        assert reply.json()["Status"]["Message"] == "Token has expired"


def test_bad_method_path_and_body(shared: Emulator, client: httpx.Client) -> None:
    headers = authorized_headers(client, shared)
    assert client.get(f"{shared.service_url}/v1/enumCircles", headers=headers).status_code == 405
    assert call(client, shared, "noSuchMethod", {}, headers).status_code == 404
    assert client.get(f"{shared.service_url}/elsewhere").status_code == 404
    url = f"{shared.service_url}/v1/enumCircles"
    assert client.post(url, content=b"{not json", headers=headers).status_code == 400
    assert client.post(url, content=b"[]", headers=headers).status_code == 400
    assert client.post(url, content=b"", headers=headers).status_code == 400


def test_stats_count_calls(emu: Emulator, client: httpx.Client) -> None:
    headers = authorized_headers(client, emu)
    call(client, emu, "enumCircles", {}, headers)
    call(client, emu, "enumTopics", {"CircleId": SEED_CIRCLES[0]["CircleId"]}, headers)
    call(client, emu, "enumCircles", {}, {"x-circle-appkey": DEMO_CREDENTIALS.app_key})
    client.get(token_url(emu, DEMO_CREDENTIALS, "1"))
    assert emu.stats == {
        "tokenRequests": 2,
        "tokenRejected": 1,
        "authorize": 1,
        "enumCircles": 2,
        "enumTopics": 1,
        "whoAmI": 0,
        "createCircle": 0,
        "addMessage": 0,
        "getMessages": 0,
        "decrypt": 0,
        "lockUser": 0,
        "unlockUser": 0,
        "genInvite": 0,
        "processInvite": 0,
        "enumFiles": 0,
        "addFile": 0,
        "unauthorized": 1,
        "serviceRequests": 4,
    }
    state = client.get(f"{emu.control_url}/state").json()
    assert state["stats"] == emu.stats
    assert state["faults"] == Faults().to_json()


def test_two_thousand_calls(shared: Emulator, client: httpx.Client) -> None:
    headers = authorized_headers(client, shared)
    url = f"{shared.service_url}/v1/enumCircles"
    deadline = time.monotonic() + 60
    for _ in range(2000):
        assert client.post(url, content=b"{}", headers=headers).status_code == 200
    assert time.monotonic() < deadline


# -- faults -------------------------------------------------------------------------------


def test_service_down_refuses_connections_then_recovers_on_same_port(emu: Emulator, client: httpx.Client) -> None:
    headers = authorized_headers(client, emu)
    url = emu.service_url
    assert client.get(f"{url}/").status_code == 200  # leaves a pooled keep-alive connection
    state = set_faults(client, emu, serviceDown=True)
    assert state["faults"]["serviceDown"] is True
    with pytest.raises(httpx.ConnectError):
        client.get(f"{url}/")
    with pytest.raises(httpx.ConnectError):
        call(client, emu, "enumCircles", {}, headers)
    set_faults(client, emu, serviceDown=False)
    assert emu.service_url == url
    assert client.get(f"{url}/").status_code == 200
    assert call(client, emu, "enumCircles", {}, headers).status_code == 200  # authorization survives


def test_set_faults_in_process(emu: Emulator, client: httpx.Client) -> None:
    emu.set_faults(serviceDown=True)
    assert emu.faults.service_down is True
    with pytest.raises(httpx.ConnectError):
        client.get(f"{emu.service_url}/")
    emu.set_faults(service_down=False)
    assert client.get(f"{emu.service_url}/").status_code == 200
    with pytest.raises(ValueError, match="unknown fault switch"):
        emu.set_faults(serviceOnFire=True)
    with pytest.raises(ValueError, match="serviceDelay"):
        emu.set_faults(serviceDelay=-1)


def test_direct_service_down_assignment_is_picked_up(emu: Emulator, client: httpx.Client) -> None:
    emu.faults.service_down = True
    deadline = time.monotonic() + 5
    while True:
        try:
            client.get(f"{emu.service_url}/")
        except httpx.ConnectError:
            break
        except httpx.TransportError:
            pass  # a request that raced the shutdown: reset by peer
        assert time.monotonic() < deadline, "the service kept listening"
    emu.faults.service_down = False
    while True:
        try:
            assert client.get(f"{emu.service_url}/").status_code == 200
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the service did not come back"


def test_service_error_500(emu: Emulator, client: httpx.Client) -> None:
    headers = authorized_headers(client, emu)
    set_faults(client, emu, serviceError500=True)
    reply = call(client, emu, "enumCircles", {}, headers)
    assert reply.status_code == 500
    assert reply.headers["content-type"].startswith("text/plain")
    assert client.get(f"{emu.service_url}/").status_code == 200  # only /v1 fails
    emu.faults.service_error_500 = False
    assert call(client, emu, "enumCircles", {}, headers).status_code == 200


def test_service_malformed(emu: Emulator, client: httpx.Client) -> None:
    headers = authorized_headers(client, emu)
    set_faults(client, emu, serviceMalformed=True)
    reply = call(client, emu, "enumCircles", {}, headers)
    assert reply.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(reply.text)


def test_service_delay(emu: Emulator, client: httpx.Client) -> None:
    headers = authorized_headers(client, emu)
    set_faults(client, emu, serviceDelay=0.3)
    started = time.monotonic()
    assert call(client, emu, "enumCircles", {}, headers).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_token_refuse_and_delay(emu: Emulator, client: httpx.Client) -> None:
    set_faults(client, emu, tokenRefuse=True)
    reply = client.get(token_url(emu, DEMO_CREDENTIALS, fresh_nonce()))
    assert reply.status_code == 403
    assert reply.json() == {"Message": "refused"}
    set_faults(client, emu, tokenRefuse=False, tokenDelay=0.3)
    started = time.monotonic()
    assert client.get(token_url(emu, DEMO_CREDENTIALS, fresh_nonce())).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_bad_fault_requests_are_400(emu: Emulator, client: httpx.Client) -> None:
    faults = f"{emu.control_url}/faults"
    assert client.post(faults, json={"serviceDown": "yes"}).status_code == 400
    assert client.post(faults, json={"nope": True}).status_code == 400
    assert client.post(faults, json=[1]).status_code == 400
    assert client.post(faults, content=b"{", headers={"content-type": "application/json"}).status_code == 400
    assert client.get(faults).status_code == 405
    assert client.get(f"{emu.control_url}/nothing").status_code == 404
    assert emu.faults == Faults()


def test_revoke_over_http(emu: Emulator, client: httpx.Client) -> None:
    token = fetch_token(client, emu)
    assert authorize(client, emu, token).status_code == 200
    assert client.post(f"{emu.control_url}/revoke", json={}).status_code == 200
    assert call(client, emu, "enumCircles", {}, bearer_headers(token)).status_code == 401
    assert authorize(client, emu, token).status_code == 401
    fresh = fetch_token(client, emu)
    assert authorize(client, emu, fresh).status_code == 200
    assert call(client, emu, "enumCircles", {}, bearer_headers(fresh)).status_code == 200


def test_the_control_api_refuses_what_a_web_page_could_send(emu: Emulator, client: httpx.Client) -> None:
    """A page the developer visits may POST to loopback: it cannot know the per-run path, cannot
    send a JSON content type without a preflight, and names its own origin."""
    faults = f"{emu.control_url}/faults"
    guessed = emu.control_url.rsplit("/", 1)[0] + "/faults"
    assert client.post(guessed, json={"serviceDown": True}).status_code == 404
    assert (
        client.post(faults, content=b'{"serviceDown": true}', headers={"content-type": "text/plain"}).status_code == 415
    )
    assert client.post(faults, content=b'{"serviceDown": true}').status_code == 415
    evil = {"origin": "https://evil.example"}
    assert client.post(faults, json={"serviceDown": True}, headers=evil).status_code == 403
    assert client.get(f"{emu.control_url}/state", headers=evil).status_code == 403
    assert emu.faults == Faults()
    assert client.post(faults, json={"serviceDown": True}).status_code == 200  # control: the real client works
    assert emu.faults.service_down


def test_revoke_in_process(emu: Emulator, client: httpx.Client) -> None:
    headers = authorized_headers(client, emu)
    emu.revoke()
    assert call(client, emu, "enumCircles", {}, headers).status_code == 401


def test_reset_clears_faults_and_stats(emu: Emulator, client: httpx.Client) -> None:
    set_faults(client, emu, serviceDown=True, tokenRefuse=True, serviceDelay=1.5)
    client.get(token_url(emu, DEMO_CREDENTIALS, fresh_nonce()))
    state = client.post(f"{emu.control_url}/reset", json={}).json()
    assert state == {"faults": Faults().to_json(), "stats": dict.fromkeys(emu.stats, 0)}
    assert client.get(f"{emu.service_url}/").status_code == 200
    set_faults(client, emu, tokenRefuse=True)
    emu.reset()
    assert emu.faults == Faults()


# -- lifecycle, https, CLI ----------------------------------------------------------------


def test_stop_is_idempotent_and_start_is_once() -> None:
    emu = Emulator().start()
    with pytest.raises(RuntimeError):
        emu.start()
    emu.stop()
    emu.stop()
    with pytest.raises(RuntimeError):
        emu.start()
    with pytest.raises(RuntimeError, match="not started"):
        _ = Emulator().token_url


def test_busy_port_raises_in_start(shared: Emulator) -> None:
    port = int(shared.service_url.rsplit(":", 1)[1])
    with pytest.raises(OSError):  # noqa: PT011 - the errno differs per platform
        Emulator(EmulatorConfig(service_port=port)).start()


def test_https_service_verifies_with_ca_file(tmp_path: Path) -> None:
    cert_dir = tmp_path / "certs"  # created on demand
    with Emulator(EmulatorConfig(https=True, cert_dir=str(cert_dir))) as emu:
        assert emu.ca_file == str(cert_dir / "ca.pem")
        assert emu.service_url.startswith("https://127.0.0.1:")
        assert emu.token_url.startswith("http://")
        assert stat.S_IMODE(os.stat(cert_dir / "service.key").st_mode) == 0o600
        verify = ssl.create_default_context(cafile=emu.ca_file)
        verify.verify_flags |= ssl.VERIFY_X509_STRICT  # the default from Python 3.13 on
        with httpx.Client(timeout=TIMEOUT, verify=verify) as client:
            assert client.get(f"{emu.service_url}/").status_code == 200
            headers = authorized_headers(client, emu)
            assert call(client, emu, "enumCircles", {}, headers).status_code == 200
            localhost = emu.service_url.replace("127.0.0.1", "localhost")
            assert client.get(f"{localhost}/").status_code == 200
        with httpx.Client(timeout=TIMEOUT) as untrusting, pytest.raises(httpx.ConnectError):
            untrusting.get(f"{emu.service_url}/")


def test_https_temp_cert_dir_is_removed() -> None:
    with Emulator(EmulatorConfig(https=True)) as emu:
        assert emu.ca_file is not None
        cert_dir = Path(emu.ca_file).parent
        assert cert_dir.is_dir()
    assert not cert_dir.exists()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_one_json_line_and_exits_cleanly(signum: int) -> None:
    command = [sys.executable, "-m", "circle_bridge.emulator", "--token-ttl", "5"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            info = json.loads(proc.stdout.readline())
            assert info["tokenTtl"] == 5
            assert info["secret"] == DEMO_CREDENTIALS.secret
            with httpx.Client(timeout=TIMEOUT) as client:
                assert client.get(f"{info['serviceUrl']}/").status_code == 200
                creds = Credentials(info["customerId"], info["appKey"], info["endUserId"], info["secret"])
                nonce = fresh_nonce()
                url = (
                    f"{info['tokenUrl']}?customerId={creds.customer_id}&appKey={creds.app_key}"
                    f"&endUserId={creds.end_user_id}&nonce={nonce}&signature={sign(creds, nonce)}"
                )
                claims = jwt_claims(decode_token_body(client.get(url))["Token"])
                assert claims["exp"] - claims["iat"] == 5
            proc.send_signal(signum)
            stdout, stderr = proc.communicate(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, stderr
    assert stdout == ""
