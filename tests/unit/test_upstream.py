import base64
import json
import subprocess
import time

import pytest

from circle_bridge._errors import UpstreamMalformed
from circle_bridge._upstream import Identity, TokenEndpoint, parse_token_body, sign, string_to_sign, token_lifetime
from circle_bridge._upstream._casing import camel_key, camelize
from circle_bridge._upstream._cloud import classify_refusal

SECRET = "  Xk9+q/Z3=secret-For-Tests==  "  # leading/trailing blanks: Circle's samples trim()
MESSAGE = string_to_sign("CUST-0042", "app-key-xyz", "userman", "1700000000")
# computed once with Node's crypto (the documented recipe) and pinned here, so the vector also
# holds on a machine without node; test_signature_matches_node re-derives it live
PINNED = "ewF/2N2QkhvZGpFX2LXwZFQ8YCP9dYJJHFL6ikGgDPw="


def test_string_to_sign_is_the_documented_order() -> None:
    assert MESSAGE == "customerId=CUST-0042&appKey=app-key-xyz&endUserId=userman&nonce=1700000000"


def test_signature_matches_node_crypto() -> None:
    script = (
        "const c=require('crypto');"
        "process.stdout.write(c.createHmac('sha256', process.argv[1].trim()).update(process.argv[2]).digest('base64'))"
    )
    node = subprocess.run(["node", "-e", script, SECRET, MESSAGE], capture_output=True, text=True, check=True)
    assert sign(SECRET, MESSAGE) == node.stdout
    assert sign(SECRET, MESSAGE) == PINNED


def test_signature_is_standard_padded_base64() -> None:
    sig = sign("k", "m")
    assert len(base64.b64decode(sig, validate=True)) == 32
    assert sig.endswith("=")


def test_signed_url_percent_encodes_every_value() -> None:
    endpoint = TokenEndpoint("http://127.0.0.1:1/api/token", timeout=1)
    url = endpoint.signed_url(Identity("C+1", "a/b", "u=1"), SECRET)
    query = url.split("?", 1)[1]
    names = [pair.split("=", 1)[0] for pair in query.split("&")]
    assert names == ["customerId", "appKey", "endUserId", "nonce", "signature"]
    assert "customerId=C%2B1&appKey=a%2Fb&endUserId=u%3D1" in query
    signature = query.rsplit("signature=", 1)[1]
    assert "+" not in signature
    assert "/" not in signature


def test_nonces_never_repeat_within_a_second() -> None:
    endpoint = TokenEndpoint("http://127.0.0.1:1/api/token", timeout=1)
    identity = Identity("c", "a", "u")
    nonces = [int(endpoint.signed_url(identity, "s").split("nonce=")[1].split("&")[0]) for _ in range(5)]
    assert nonces == sorted(set(nonces))
    assert abs(nonces[0] - time.time()) < 5


def test_millisecond_nonces() -> None:
    endpoint = TokenEndpoint("http://127.0.0.1:1/api/token", timeout=1, nonce_unit="ms")
    nonce = int(endpoint.signed_url(Identity("c", "a", "u"), "s").split("nonce=")[1].split("&")[0])
    assert abs(nonce / 1000 - time.time()) < 5


def test_token_body_double_encoded_with_crlf() -> None:
    inner = json.dumps({"Token": "a.b.c"}, indent=2).replace("\n", "\r\n")
    assert parse_token_body(json.dumps(inner).encode()) == "a.b.c"


def test_token_body_plain_object() -> None:
    assert parse_token_body(b'{"Token": "x.y.z", "Other": 1}') == "x.y.z"


@pytest.mark.parametrize("body", [b"<html>", b'"not an object"', b'{"token": "lowercase"}', b'{"Token": ""}', b"[]"])
def test_token_body_malformed(body: bytes) -> None:
    with pytest.raises(UpstreamMalformed):
        parse_token_body(body)


def _jwt(claims: dict[str, object]) -> str:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.sig"


def test_lifetime_from_exp_minus_iat() -> None:
    assert token_lifetime(_jwt({"iat": 1000, "nbf": 1000, "exp": 1600})) == 599  # iat is truncated
    assert token_lifetime(_jwt({"iat": 1000.5, "exp": 1600.5})) == 600


def test_lifetime_without_iat_uses_clock() -> None:
    assert token_lifetime(_jwt({"exp": 2000}), now=1990) == 10


def test_lifetime_falls_back_to_ten_minutes() -> None:
    assert token_lifetime("opaque-token") == 600
    assert token_lifetime(_jwt({"no": "exp"})) == 600


@pytest.mark.parametrize(
    ("key", "camel"),
    [("CircleId", "circleId"), ("ID", "id"), ("URLPath", "urlPath"), ("FmapID", "fmapID"), ("already", "already")],
)
def test_camel_key(key: str, camel: str) -> None:
    assert camel_key(key) == camel


def test_camelize_keeps_every_field_recursively() -> None:
    raw = {"CircleId": "c", "Owner": {"MemberId": 1, "Tags": [{"TagName": "x"}]}, "ExtraField": None}
    assert camelize(raw) == {"circleId": "c", "owner": {"memberId": 1, "tags": [{"tagName": "x"}]}, "extraField": None}


@pytest.mark.parametrize(
    ("status", "message", "cause"),
    [
        (401, "Invalid signature", "CIRCLE_SECRET"),
        (401, "Unknown customerId or appKey", "CIRCLE_APP_KEY"),
        (401, "Stale nonce: it must be the current epoch time", "clock"),
        (401, None, "CIRCLE_SECRET"),
        (403, "refused", "refused"),
    ],
)
def test_credential_refusals_are_not_retryable_and_name_the_cause(status: int, message: str | None, cause: str) -> None:
    refusal = classify_refusal(status, message)
    assert refusal is not None
    assert refusal.retry_with_new_nonce is False
    error = refusal.error("http://127.0.0.1:1/api/token")
    assert error.wire_data()["retryable"] is False
    assert cause in error.wire_data()["likelyCause"]
    assert error.wire_data()["httpStatus"] == status


def test_only_a_reused_nonce_is_retried_and_server_errors_stay_retryable() -> None:
    reused = classify_refusal(401, "Nonce reused")
    assert reused is not None
    assert reused.retry_with_new_nonce is True
    assert classify_refusal(200, None) is None
    for status in (500, 502, 503, 429):
        refusal = classify_refusal(status, "busy")
        assert refusal is not None
        assert refusal.retryable is True
        assert refusal.retry_with_new_nonce is False
    bad_request = classify_refusal(400, "expected exactly the query parameters")
    assert bad_request is not None
    assert bad_request.retryable is False
