"""The token endpoint's default mode is not stricter than Circle (docs/circle-api.md §7): it checks the
signature and the identity, and nothing Circle does not document. Strict rules: test_emulator.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from circle_bridge.emulator import DEMO_CREDENTIALS, Credentials, Emulator, EmulatorConfig

CREDS = DEMO_CREDENTIALS


def signature(nonce: str, creds: Credentials = CREDS, prefix: str = "") -> str:
    message = (
        f"{prefix}customerId={creds.customer_id}&appKey={creds.app_key}&endUserId={creds.end_user_id}&nonce={nonce}"
    )
    return base64.b64encode(hmac.new(creds.secret.strip().encode(), message.encode(), hashlib.sha256).digest()).decode()


def params(nonce: str, creds: Credentials = CREDS, prefix: str = "") -> dict[str, str]:
    return {
        "customerId": creds.customer_id,
        "appKey": creds.app_key,
        "endUserId": creds.end_user_id,
        "nonce": nonce,
        "signature": signature(nonce, creds, prefix),
    }


def query(values: dict[str, str]) -> str:
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in values.items())


def claims_of(reply: httpx.Response) -> dict[str, Any]:
    body = json.loads(reply.text)
    token = (json.loads(body) if isinstance(body, str) else body)["Token"]
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


@pytest.fixture(scope="module")
def lenient() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10, trust_env=False) as client:
        yield client


def test_default_mode_enforces_no_strict_rule() -> None:
    config = EmulatorConfig()
    assert not any(
        (
            config.check_nonce_freshness,
            config.reject_nonce_reuse,
            config.bind_app_key,
            config.exact_nbf,
            config.exact_query,
        )
    )
    strict = EmulatorConfig(strict=True, reject_nonce_reuse=False)
    assert (strict.check_nonce_freshness, strict.bind_app_key, strict.exact_nbf, strict.exact_query) == (True,) * 4
    assert strict.reject_nonce_reuse is False  # each rule is its own switch


@pytest.mark.parametrize("nonce", ["-1458930207", "123", "1700000000"])  # ForgeRock's random int, PHP's 123
def test_any_integer_nonce_is_accepted_and_may_repeat(lenient: Emulator, client: httpx.Client, nonce: str) -> None:
    url = f"{lenient.token_url}?{query(params(nonce))}"
    assert client.get(url).status_code == 200
    assert client.get(url).status_code == 200  # the same nonce again


def test_parameters_in_any_order_with_extras_and_empty_pairs(lenient: Emulator, client: httpx.Client) -> None:
    values = params("42")
    shuffled = dict(reversed(list(values.items())))
    assert client.get(f"{lenient.token_url}?&{query(shuffled)}&cachebuster=1").status_code == 200
    missing = {k: v for k, v in values.items() if k != "nonce"}
    reply = client.get(f"{lenient.token_url}?{query(missing)}")
    assert reply.status_code == 400
    assert "nonce" in reply.json()["Message"]


def test_bad_signature_and_unknown_identity_are_still_refused(lenient: Emulator, client: httpx.Client) -> None:
    values = params("42")
    values["signature"] = signature("43")
    assert client.get(f"{lenient.token_url}?{query(values)}").json() == {"Message": "Invalid signature"}
    stranger = Credentials("CUST-NOBODY", "appkey-nobody", "u", "s")
    assert client.get(f"{lenient.token_url}?{query(params('42', stranger))}").status_code == 401


def test_tokens_carry_the_claim_shapes_seen_in_the_wild(lenient: Emulator, client: httpx.Client) -> None:
    claims = claims_of(client.get(f"{lenient.token_url}?{query(params('7'))}"))
    assert claims["unique_name"] == CREDS.customer_id
    assert claims["primarysid"] == CREDS.end_user_id
    assert len(claims["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/authorizationdecision"]) == 4
    assert claims["gender"].startswith("<RSAKeyValue><Modulus>")
    assert claims["gender"].endswith("<Exponent>AQAB</Exponent></RSAKeyValue>")
    modulus = claims["gender"].split("<Modulus>")[1].split("</Modulus>")[0]
    assert len(base64.b64decode(modulus)) * 8 == 4096
    assert json.loads(claims["http://schemas.microsoft.com/ws/2008/06/identity/claims/userdata"]) == {
        "CrossCustomerExceptions": []
    }
    assert claims["nbf"] == claims["iat"]
    assert claims["exp"] - claims["iat"] == 600
    assert "appkey" not in claims  # no app-key claim and no jti in real tokens
    assert "jti" not in claims


def test_a_token_works_with_any_configured_app_key_unless_bound(client: httpx.Client) -> None:
    other = Credentials("CUST-OTHER-0002", "appkey-other-11aa", "alice", "other secret")
    with Emulator(EmulatorConfig(credentials=(CREDS, other))) as emu:
        token = json.loads(json.loads(client.get(f"{emu.token_url}?{query(params('9'))}").text))["Token"]
        reply = client.post(
            f"{emu.service_url}/v1/authorize", json={"Token": token}, headers={"x-circle-appkey": other.app_key}
        )
        assert reply.status_code == 200


def test_question_mark_variant_and_either(client: httpx.Client) -> None:
    with Emulator(EmulatorConfig(signed_string="question")) as emu:
        assert client.get(f"{emu.token_url}?{query(params('5', prefix='?'))}").status_code == 200
        assert client.get(f"{emu.token_url}?{query(params('5'))}").status_code == 401
    with Emulator() as emu:  # default: either form verifies, the sources disagree
        assert client.get(f"{emu.token_url}?{query(params('5', prefix='?'))}").status_code == 200
        assert client.get(f"{emu.token_url}?{query(params('5'))}").status_code == 200


def test_redirect_and_error_status_modes(client: httpx.Client) -> None:
    with Emulator(EmulatorConfig(token_redirect=True, token_error_status=200)) as emu:
        first = client.get(f"{emu.token_url}?{query(params('5'))}")
        assert first.status_code == 307
        assert first.headers["location"].startswith("/api/v2/token?customerId=")
        followed = client.get(f"{emu.token_url}?{query(params('5'))}", follow_redirects=True)
        assert followed.status_code == 200
        values = params("5")
        values["signature"] = signature("6")
        refused = client.get(f"{emu.token_url}?{query(values)}", follow_redirects=True)
        assert refused.status_code == 200
        assert refused.json() == {"Message": "Invalid signature"}


def test_root_is_a_text_message(lenient: Emulator, client: httpx.Client) -> None:
    reply = client.get(f"{lenient.service_url}/")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
