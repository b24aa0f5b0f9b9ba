"""The protocol document against the live bridge, in both directions.

- The document is valid OpenRPC (the official meta-schema, from npm) and equals what the code
  generates, and what a running bridge returns from `rpc.discover`.
- Every example is replayed against a live bridge + emulator; every real reply is validated
  against the method's result schema; error examples must produce their code.
- Methods: a spec method the server does not answer, or a method the server registers that the
  spec lacks, fails.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import referencing
import referencing.jsonschema

from circle_bridge._config import Settings
from circle_bridge._connection import Connection, circle_methods
from circle_bridge._openrpc import build_document
from circle_bridge._session import open_session
from circle_bridge.client import BridgeClient
from circle_bridge.emulator import Emulator
from tests.bridge_harness import bridge_env, run, with_bridge
from tests.unit.test_boundary import MemoryWriter

ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = ROOT / "protocol" / "circle-bridge.openrpc.json"
SPEC: dict[str, Any] = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
REQUESTS = [m for m in SPEC["methods"] if m["x-kind"] == "request"]


def _npm_json(package: str) -> dict[str, Any]:
    path = ROOT / "protocol" / "node_modules" / package
    script = "const m = require(process.argv[1]); process.stdout.write(JSON.stringify(m.default || m))"
    out = subprocess.run(["node", "-e", script, str(path)], capture_output=True, text=True, check=True, timeout=60)
    schema: dict[str, Any] = json.loads(out.stdout)
    return schema


def meta_validator() -> jsonschema.protocols.Validator:
    """The official OpenRPC meta-schema; it is draft-07 based and refers to the JSON Schema
    meta-schema of json-schema.tools, served here from the npm package instead of the network."""
    openrpc = _npm_json("@open-rpc/meta-schema")
    json_schema = _npm_json("@json-schema-tools/meta-schema")
    draft7 = referencing.jsonschema.DRAFT7
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(
        [
            (openrpc["$id"], draft7.create_resource(openrpc)),
            (json_schema["$id"], draft7.create_resource(json_schema)),
            (json_schema["$id"].rstrip("/"), draft7.create_resource(json_schema)),
        ]
    )
    schema = {k: v for k, v in openrpc.items() if k != "$schema"}
    return jsonschema.Draft7Validator(schema, registry=registry)


def result_validator(method: dict[str, Any]) -> jsonschema.protocols.Validator:
    if method["name"] == "rpc.discover":
        return meta_validator()
    schema = {**method["result"]["schema"], "components": SPEC["components"]}
    return jsonschema.Draft202012Validator(schema)


def test_document_is_valid_openrpc() -> None:
    validator = meta_validator()
    assert "openrpc" in validator.schema["properties"]  # really the meta-schema, not an empty object
    validator.validate(SPEC)


def test_meta_schema_catches_a_broken_document() -> None:
    validator = meta_validator()
    assert not validator.is_valid({**SPEC, "methods": [{"summary": "no name, no params"}]})
    bad_schema = json.loads(json.dumps(SPEC))
    bad_schema["components"]["schemas"]["EnumTopicsParams"]["type"] = 42
    assert not validator.is_valid(bad_schema)


def test_committed_document_is_the_generated_one() -> None:
    assert build_document() == SPEC


def test_server_registers_exactly_the_spec_methods() -> None:
    settings = Settings(service_url="http://127.0.0.1:9")

    async def registered() -> set[str]:
        connection = Connection(settings, MemoryWriter(), circle_methods(open_session(settings)))
        return set(connection.server.protocol.fm.features)

    # $/cancelRequest is handled by the dispatcher itself, not registered as a feature
    assert run(registered()) | {"$/cancelRequest"} == {m["name"] for m in SPEC["methods"]}


def test_live_bridge_discovers_the_same_document_and_answers_every_method(shared_emulator: Emulator) -> None:
    async def body(bridge: BridgeClient) -> None:
        assert await bridge.discover() == SPEC
        for method in REQUESTS:
            if method["name"] in ("shutdown", "initialize"):
                continue
            reply = await bridge.request_raw(method["name"], {m["name"]: "x" for m in method["params"]} or None)
            assert reply.get("error", {}).get("code") != -32601, method["name"]
        unknown = await bridge.request_raw("circle/notInTheSpec", {})
        assert unknown["error"]["code"] == -32601

    run(with_bridge(bridge_env(shared_emulator), body))


EXAMPLES = [(m, ex) for m in SPEC["methods"] for ex in m["examples"]]


@pytest.mark.parametrize(("method", "example"), EXAMPLES, ids=[f"{m['name']}:{e['name']}" for m, e in EXAMPLES])
def test_example_replays_against_live_bridge(shared_emulator: Emulator, method: dict[str, Any], example: Any) -> None:
    params = {p["name"]: p["value"] for p in example["params"]}
    name = method["name"]

    async def body(bridge: BridgeClient) -> None:
        if method["x-kind"] == "notification":
            bridge.notify(name, params or None)
            if name == "exit":
                assert bridge.process is not None
                assert await bridge.process.wait() == 1  # exit without shutdown
                return
            assert len((await bridge.request("circle/enumCircles", {}))["circles"]) > 0
            return
        if name == "initialize":
            reply = await bridge.request_raw(name, params)
            assert reply["error"]["code"] == -32600  # the harness already initialized this connection
            return
        reply = await bridge.request_raw(name, params or None)
        if "x-error" in example:
            assert reply["error"]["code"] == example["x-error"]["code"]
            assert reply["error"]["message"] == example["x-error"]["message"]
            return
        assert "result" in reply, reply
        result_validator(method).validate(reply["result"])
        expected = example["result"]["value"]
        if isinstance(expected, dict) and name != "rpc.discover":
            # the example's own fields appear in the live reply (lists: the first item's fields)
            for key, value in expected.items():
                if isinstance(value, list) and value and isinstance(value[0], dict):
                    assert set(value[0]) <= set(reply["result"][key][0])
                    assert value[0][next(iter(value[0]))] == reply["result"][key][0][next(iter(value[0]))]

    run(with_bridge(bridge_env(shared_emulator), body))


def test_example_results_validate_against_their_schemas() -> None:
    for method, example in EXAMPLES:
        if method["x-kind"] == "request" and "result" in example and method["name"] != "rpc.discover":
            result_validator(method).validate(example["result"]["value"])


def test_initialize_example_shape_against_a_fresh_connection(shared_emulator: Emulator) -> None:
    from tests.bridge_harness import start_bridge

    method = next(m for m in SPEC["methods"] if m["name"] == "initialize")
    example = method["examples"][0]

    async def scenario() -> None:
        bridge = await start_bridge(bridge_env(shared_emulator), initialize=False)
        params = {p["name"]: p["value"] for p in example["params"]}
        result = await bridge.client.request("initialize", params)
        result_validator(method).validate(result)
        assert set(result["capabilities"]["methods"]) == {m["name"] for m in SPEC["methods"]}
        await bridge.client.close()

    run(scenario())


def test_every_catalogue_code_is_provoked_against_a_live_bridge() -> None:
    """One scenario per documented code; a code added to the catalogue without one fails here.
    -32603 (a bug by definition) is provoked in memory by tests/unit/test_boundary.py."""
    from circle_bridge._framing import encode_frame
    from tests.bridge_harness import emulator_running, start_bridge, start_daemon, wait_until

    seen: dict[int, str] = {}
    replies: list[dict[str, Any]] = []

    def error_code(reply: dict[str, Any]) -> int:
        replies.append(reply["error"])
        code: int = reply["error"]["code"]
        return code

    async def code_of(bridge: BridgeClient, method: str, params: Any = None) -> int:
        return error_code(await bridge.request_raw(method, params))

    with emulator_running() as emulator, emulator_running() as other:

        async def scenario() -> None:
            fresh = await start_bridge(bridge_env(emulator, CIRCLE_SERVICE_TIMEOUT="0.5"), initialize=False)
            b = fresh.client
            seen[await code_of(b, "circle/enumCircles", {})] = "before initialize"
            await b.initialize()
            b.send_raw(encode_frame(b"{nope"))
            seen[error_code(await asyncio.wait_for(b.unsolicited.get(), 10))] = "bad JSON"
            seen[await code_of(b, "initialize", {})] = "second initialize"
            seen[await code_of(b, "circle/nope", {})] = "unknown method"
            seen[await code_of(b, "circle/enumTopics", {})] = "missing circleId"
            seen[await code_of(b, "circle/enumTopics", {"circleId": "no-such-circle"})] = "unknown circle"
            emulator.set_faults(serviceMalformed=True)
            seen[await code_of(b, "circle/enumCircles", {})] = "malformed reply"
            emulator.set_faults(serviceMalformed=False, serviceDelay=2.0)
            seen[await code_of(b, "circle/enumCircles", {})] = "slow service"
            topics_before = emulator.stats["enumTopics"]
            slow = asyncio.ensure_future(b.request_raw("circle/enumTopics", {"circleId": "x"}, msg_id="c"))
            await wait_until(lambda: emulator.stats["enumTopics"] == topics_before + 1)
            b.cancel("c")
            seen[error_code(await slow)] = "cancelled"
            emulator.set_faults(serviceDelay=0.0, serviceDown=True)
            seen[await code_of(b, "circle/enumCircles", {})] = "service down"
            await b.close()

            refused = await start_bridge(bridge_env(emulator))
            emulator.set_faults(serviceDown=False, tokenRefuse=True)
            seen[await code_of(refused.client, "circle/initialize", {})] = "token refused"
            await refused.client.close()
            emulator.set_faults(tokenRefuse=False)

            mismatched = await start_bridge(bridge_env(emulator, CIRCLE_SERVICE_URL=other.service_url))
            seen[await code_of(mismatched.client, "circle/initialize", {})] = "authorization rejected"
            await mismatched.client.close()

            unconfigured = await start_bridge(bridge_env(emulator, CIRCLE_SECRET="", CIRCLE_APP_KEY=""))
            seen[await code_of(unconfigured.client, "circle/initialize", {})] = "no credentials"
            await unconfigured.client.close()

            daemon = await start_daemon(bridge_env(emulator))
            try:
                host, _, port = (daemon.state.tcp or "").rpartition(":")
                no_auth = await BridgeClient.connect_tcp(host, int(port), auth_token="not-the-token")
                seen[await code_of(no_auth, "initialize", {})] = "TCP without the daemon's token"
                await no_auth.close()
            finally:
                await daemon.stop()
            tokenless = await start_bridge(bridge_env(emulator, CIRCLE_TOKEN_SOURCE="client"))
            seen[await code_of(tokenless.client, "circle/enumCircles", {})] = "client source, no token yet"
            await tokenless.client.close()

        run(scenario())
    documented = {e["code"]: e for e in SPEC["components"]["errors"].values()}
    assert set(seen) == set(documented) - {-32603}, seen
    # every reply has the documented shape: the catalogue's message (then `: detail`), and `data`
    # an object with a boolean `retryable`
    for error in replies:
        entry = documented[error["code"]]
        assert error["message"] == entry["message"] or error["message"].startswith(entry["message"] + ": "), error
        assert isinstance(error["data"], dict), error
        assert isinstance(error["data"]["retryable"], bool), error
