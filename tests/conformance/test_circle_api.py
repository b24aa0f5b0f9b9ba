"""The Circle API methods against their published contract, on a live bridge and emulator:

- every live result of a full walk (success paths the examples cannot show, such as unlockUser
  with real codes) validates against the method's result schema;
- `$/progress` notifications validate against the schema the document gives them;
- every documented error of every `circle/*` method is provoked: bad params (-32602 naming the
  field), Status.Result false (-33004), malformed reply (-33005), timeout (-33006), service down
  (-33001);
- the experimental markers are exactly on the four methods whose paths are inferred.
"""

from __future__ import annotations

import asyncio
from typing import Any

import jsonschema
import pytest

from circle_bridge.client import BridgeClient
from circle_bridge.emulator import SEED_CIRCLES, Emulator
from circle_bridge.unlock_codes import decrypt_unlock_codes, load_private_key
from tests.bridge_harness import bridge_env, emulator_running, error_of, run, start_bridge, wait_until
from tests.conformance.test_openrpc import SPEC, result_validator

METHODS = {m["name"]: m for m in SPEC["methods"]}
CIRCLE_ID = SEED_CIRCLES[0]["CircleId"]
TOPIC_ID = SEED_CIRCLES[0]["Topics"][0]["TopicId"]
EXPERIMENTAL = {"circle/genInvite", "circle/processInvite", "circle/enumFiles", "circle/addFile"}

# Valid params for every circle/* method that takes some: the seed's ids.
VALID: dict[str, dict[str, Any]] = {
    "circle/enumTopics": {"circleId": CIRCLE_ID},
    "circle/createCircle": {"circleName": "conformance"},
    "circle/whoAmI": {"circleId": CIRCLE_ID},
    "circle/addMessage": {"circleId": CIRCLE_ID, "topicId": TOPIC_ID, "message": "m"},
    "circle/getMessages": {"circleId": CIRCLE_ID, "topicId": TOPIC_ID},
    "circle/decrypt": {"circleId": CIRCLE_ID, "topicId": TOPIC_ID, "toDecrypt": "eA=="},
    "circle/lockUser": {"circleId": CIRCLE_ID},
    "circle/unlockUser": {"circleId": CIRCLE_ID, "unlockCodes": ["x"]},
    "circle/genInvite": {"circleId": CIRCLE_ID},
    "circle/processInvite": {"inviteId": "i", "authCode": "a"},
    "circle/enumFiles": {"circleId": CIRCLE_ID, "topicId": TOPIC_ID},
    "circle/addFile": {"circleId": CIRCLE_ID, "topicId": TOPIC_ID, "filePath": "/tmp/x"},
    "circle/putSecret": {"name": "n", "value": "v"},
    "circle/getSecret": {"name": "n"},
}
# Params that make CircleService answer Status.Result false.
FAILING: dict[str, dict[str, Any]] = {
    **{name: {**params, "circleId": "no-such-circle"} for name, params in VALID.items() if "circleId" in params},
    "circle/processInvite": {"inviteId": "no-such-invite", "authCode": "a"},
    "circle/putSecret": {"name": "n", "value": "v", "circleId": "no-such-circle"},
    "circle/getSecret": {"name": "n", "circleId": "no-such-circle"},
}
UPSTREAM_METHODS = sorted(VALID)


def documented_codes(method: str) -> set[int]:
    names = {ref["$ref"].rsplit("/", 1)[1] for ref in METHODS[method].get("errors", [])}
    return {SPEC["components"]["errors"][name]["code"] for name in names}


def test_every_circle_method_has_params_for_these_tests() -> None:
    circle_methods = {m for m in METHODS if m.startswith("circle/") and METHODS[m]["params"]}
    # circle/initialize's one param, `token`, belongs to the client token source: its own tests
    # (tests/e2e/test_token_sources.py) provoke it
    assert circle_methods - {"circle/initialize"} == set(VALID)
    assert set(FAILING) == set(VALID) - {"circle/createCircle"}  # creating needs no existing thing


def test_experimental_markers_are_on_the_inferred_paths_only() -> None:
    marked = {name for name, m in METHODS.items() if m.get("x-experimental") is True}
    assert marked == EXPERIMENTAL
    for name in marked:
        assert "inferred path" in METHODS[name]["description"]


@pytest.mark.parametrize("method", UPSTREAM_METHODS)
def test_wrong_param_types_and_unknown_params_name_the_field(shared_emulator: Emulator, method: str) -> None:
    async def scenario(bridge: BridgeClient) -> None:
        for param in METHODS[method]["params"]:
            assert "number" not in str(param["schema"])  # else 1.5 would be a valid value
            params = {**VALID[method], param["name"]: 1.5}
            reply = await bridge.request_raw(method, params)
            assert reply["error"]["code"] == -32602, (method, param["name"], reply)
            assert reply["error"]["data"]["field"] == param["name"]
            if param["required"]:
                missing = {k: v for k, v in VALID[method].items() if k != param["name"]}
                reply = await bridge.request_raw(method, missing)
                assert reply["error"]["data"]["field"] == param["name"]
        reply = await bridge.request_raw(method, {**VALID[method], "notAParam": 1})
        assert reply["error"]["code"] == -32602

    async def body() -> None:
        bridge = await start_bridge(bridge_env(shared_emulator))
        try:
            await scenario(bridge.client)
        finally:
            await bridge.client.close()

    run(body())


def test_every_documented_upstream_error_of_every_method_is_provoked() -> None:
    seen: dict[str, set[int]] = {name: set() for name in UPSTREAM_METHODS}

    async def code_of(client: BridgeClient, method: str, params: dict[str, Any]) -> int:
        reply = await client.request_raw(method, params)
        assert "error" in reply, (method, reply)
        assert reply["error"]["data"]["retryable"] in (True, False)
        code: int = reply["error"]["code"]
        seen[method].add(code)
        return code

    with emulator_running(create_delay=0) as emulator:

        async def scenario() -> None:
            bridge = await start_bridge(bridge_env(emulator, CIRCLE_SERVICE_TIMEOUT="0.5"))
            client = bridge.client
            for method, params in FAILING.items():
                assert await code_of(client, method, params) == -33004, method
            for fault, value, code in (
                ("serviceError500", True, -33004),  # an HTTP error is -33004 too, with data.httpStatus
                ("serviceMalformed", True, -33005),
                ("serviceDelay", 1.0, -33006),
                ("serviceDown", True, -33001),
            ):
                emulator.set_faults(**{fault: value})
                for method in UPSTREAM_METHODS:
                    if fault == "serviceDelay" and method == "circle/createCircle":
                        continue  # it waits 60 s longer; its -33006 comes from the token endpoint below
                    assert await code_of(client, method, VALID[method]) == code, (method, fault)
                emulator.reset()
            await client.close()

            no_token_yet = await start_bridge(bridge_env(emulator, CIRCLE_TOKEN_TIMEOUT="0.5"))
            emulator.set_faults(tokenDelay=1.0)
            assert await code_of(no_token_yet.client, "circle/createCircle", VALID["circle/createCircle"]) == -33006
            emulator.reset()
            await no_token_yet.client.close()

            # the credential and configuration errors every method documents
            refused = await start_bridge(bridge_env(emulator))
            emulator.set_faults(tokenRefuse=True)
            for method in UPSTREAM_METHODS:
                assert await code_of(refused.client, method, VALID[method]) == -33002
            emulator.reset()
            await refused.client.close()
            unconfigured = await start_bridge(bridge_env(emulator, CIRCLE_SECRET=""))
            for method in UPSTREAM_METHODS:
                assert await code_of(unconfigured.client, method, VALID[method]) == -33007
            await unconfigured.client.close()
            awaiting_token = await start_bridge(bridge_env(emulator, CIRCLE_TOKEN_SOURCE="client"))
            for method in UPSTREAM_METHODS:
                assert await code_of(awaiting_token.client, method, VALID[method]) == -33020
            await awaiting_token.client.close()
            with emulator_running() as other:
                mismatched = await start_bridge(bridge_env(emulator, CIRCLE_SERVICE_URL=other.service_url))
                for method in UPSTREAM_METHODS:
                    assert await code_of(mismatched.client, method, VALID[method]) == -33003
                await mismatched.client.close()

        run(scenario(), timeout=180)
    for method, codes in seen.items():
        assert codes == documented_codes(method) - {-32800}, method


def test_cancelling_create_circle_is_its_documented_error() -> None:
    assert -32800 in documented_codes("circle/createCircle")
    with emulator_running(create_delay=30) as emulator:

        async def scenario() -> None:
            bridge = await start_bridge(bridge_env(emulator))
            await bridge.client.circle_initialize()
            pending = asyncio.ensure_future(
                bridge.client.request_raw("circle/createCircle", VALID["circle/createCircle"], msg_id="c")
            )
            await wait_until(lambda: emulator.stats["createCircle"] == 1)
            bridge.client.cancel("c")
            assert (await pending)["error"]["code"] == -32800
            await bridge.client.close()

        run(scenario())


def test_live_results_of_a_full_walk_match_their_schemas() -> None:
    progress_schema = {
        **SPEC["x-notifications"]["serverToClientParams"]["$/progress"],
        "components": SPEC["components"],
    }
    assert set(SPEC["x-notifications"]["serverToClient"]) == {"$/progress", "circle/tokenNeeded"}
    validated: set[str] = set()

    with emulator_running(create_delay=0) as emulator:

        async def scenario() -> None:
            bridge = await start_bridge(bridge_env(emulator))
            client = bridge.client

            async def checked(method: str, params: dict[str, Any]) -> Any:
                result = await client.request(method, params)
                result_validator(METHODS[method]).validate(result)
                validated.add(method)
                return result

            created = await checked("circle/createCircle", {"circleName": "walk", "workDoneToken": "w"})
            while True:
                message = await asyncio.wait_for(client.unsolicited.get(), 10)
                jsonschema.Draft202012Validator(progress_schema).validate(message["params"])
                if message["params"]["value"]["kind"] == "end":
                    break
            circle = created["circleId"]
            topic = (await client.enum_topics(circle))[0]["topicId"]
            where = {"circleId": circle, "topicId": topic}
            await checked("circle/whoAmI", {"circleId": circle})
            added = await checked("circle/addMessage", {**where, "message": "m", "base64Data": "eA=="})
            await checked("circle/getMessages", where)
            await checked("circle/decrypt", {**where, "toDecrypt": added["messages"]["base64Data"]})
            await checked("circle/putSecret", {"name": "n", "value": "v", **where})
            await checked("circle/getSecret", {"name": "n", **where})
            await checked("circle/getSecret", {"name": "absent"})
            invite = (await checked("circle/genInvite", {"circleId": circle}))["invite"]
            await checked("circle/processInvite", {"inviteId": invite["inviteId"], "authCode": invite["authCode"]})
            await checked("circle/addFile", {**where, "filePath": "/tmp/walk.txt"})
            await checked("circle/enumFiles", where)
            locked = await checked("circle/lockUser", {"circleId": circle, "numberOfCodes": 3})
            key = load_private_key(str(emulator.describe()["privateKey"]).encode())
            codes = decrypt_unlock_codes(key, locked["encryptedUnlockCodes"])
            await checked("circle/unlockUser", {"circleId": circle, "unlockCodes": codes})
            too_many = await error_of(client.request("circle/lockUser", {"circleId": circle, "numberOfCodes": 17}))
            assert too_many.data["field"] == "numberOfCodes"
            await client.close()

        run(scenario())
    assert validated == set(UPSTREAM_METHODS) - {"circle/enumTopics"}


def test_field_docstrings_document_the_schema_properties() -> None:
    schemas = SPEC["components"]["schemas"]
    assert schemas["CircleInitializeResult"]["properties"]["expiresIn"]["description"].startswith("Seconds until")
    assert "MarkupText" in schemas["AddMessageParams"]["properties"]["messageType"]["description"]
    wait = schemas["ProcessInviteParams"]["properties"]["wait20Second"]["description"]
    assert "25 s longer" in wait
    # wire names, not Python names, and no description invented for an undocumented field
    assert "description" not in schemas["AddMessageParams"]["properties"]["context"]
