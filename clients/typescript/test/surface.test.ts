// The package's public surface is deliberate: adding or dropping an export must show up here.
import * as assert from "node:assert/strict";
import { it } from "node:test";

import * as api from "../src/index";

it("exports exactly the public surface", () => {
  assert.deepEqual(Object.keys(api).sort(), [
    "CancellationToken",
    "CancellationTokenSource",
    "CircleBridgeClient",
    "CircleBridgeError",
    "ClientErrorCodes",
    "ErrorCatalogue",
    "ErrorCodes",
    "NOTIFICATION_METHODS",
    "PROTOCOL_VERSION",
    "REQUEST_METHODS",
    "SERVER_NOTIFICATION_METHODS",
    "attach",
    "connect",
    "errorName",
    "readDaemonState",
    "runtimeDir",
    "spawn",
  ]);
});

it("names every catalogued code, and nothing else, after the catalogue", () => {
  for (const [name, code] of Object.entries(api.ErrorCodes)) {
    assert.equal(api.errorName(code), name);
    assert.equal(api.ErrorCatalogue[name as api.ErrorName].code, code);
  }
  assert.equal(api.errorName(api.ClientErrorCodes.ConnectionClosed), "ConnectionClosed");
  assert.equal(api.errorName(-1), "UnknownError");
});

it("takes retryable from the error data, else from the catalogue", () => {
  const fromData = new api.CircleBridgeError(api.ErrorCodes.ServiceNotRunning, "down", { data: { retryable: false } });
  assert.equal(fromData.retryable, false);
  const fromCatalogue = new api.CircleBridgeError(api.ErrorCodes.ServiceNotRunning, "down");
  assert.equal(fromCatalogue.retryable, true);
  assert.equal(fromCatalogue.name, "ServiceNotRunning");
  assert.ok(fromCatalogue instanceof Error);
});
