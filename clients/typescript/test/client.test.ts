// End to end: this package's spawn() -> a real `circle-bridge serve --stdio` -> a real emulator.
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import { after, before, describe, it } from "node:test";

import {
  CancellationTokenSource,
  CircleBridgeClient,
  CircleBridgeError,
  ErrorCodes,
  NOTIFICATION_METHODS,
  REQUEST_METHODS,
  spawn,
} from "../src/index";
import { BRIDGE_BIN, type Emulator, SPEC_PATH, startEmulator, within } from "../test-support/support";

const CALL_TIMEOUT_MS = 15_000;

/** Await `promise`, expecting it to reject with a CircleBridgeError; return that error. */
async function rejection(promise: Promise<unknown>): Promise<CircleBridgeError> {
  try {
    await within(promise, CALL_TIMEOUT_MS, "the call to fail");
  } catch (error) {
    assert.ok(error instanceof CircleBridgeError, `expected a CircleBridgeError, got ${String(error)}`);
    return error;
  }
  assert.fail("the call succeeded");
}

describe("spawn() against the emulator", () => {
  let emulator: Emulator;
  let client: CircleBridgeClient;

  before(async () => {
    emulator = await startEmulator();
    client = await spawn({ command: BRIDGE_BIN, env: emulator.env, clientName: "node-test" });
  });

  after(async () => {
    await client?.close();
    await emulator?.stop();
  });

  it("completes the handshake", () => {
    assert.equal(client.serverInfo.name, "circle-bridge");
    assert.equal(typeof client.serverInfo.version, "string");
    assert.equal(client.capabilities.cancellation, true);
    assert.ok(client.capabilities.methods.includes("circle/enumTopics"));
  });

  it("isServiceRunning is true, with the emulator's service URL", async () => {
    const result = await within(client.circle.isServiceRunning(), CALL_TIMEOUT_MS, "isServiceRunning");
    assert.equal(result.running, true);
    assert.equal(result.serviceUrl.replace(/\/$/, ""), emulator.info.serviceUrl.replace(/\/$/, ""));
  });

  it("circle/initialize authorizes the configured end user", async () => {
    const result = await within(client.circle.initialize(), CALL_TIMEOUT_MS, "circle/initialize");
    assert.equal(result.authorized, true);
    assert.equal(result.endUserId, emulator.info.endUserId);
    assert.ok(result.expiresIn > 0);
  });

  it("enumCircles returns circles, with fields beyond the schema kept", async () => {
    const { circles } = await within(client.circle.enumCircles(), CALL_TIMEOUT_MS, "enumCircles");
    assert.ok(circles.length >= 1);
    for (const circle of circles) {
      assert.equal(typeof circle.circleId, "string");
      assert.ok(circle.circleId.length > 0);
    }
    // memberCount is not in CircleInfo's schema: the index signature keeps it visible.
    assert.ok(circles.some((circle) => typeof circle["memberCount"] === "number"), JSON.stringify(circles));
  });

  it("enumTopics of the first circle returns topics with topicId", async () => {
    const { circles } = await within(client.circle.enumCircles(), CALL_TIMEOUT_MS, "enumCircles");
    const first = circles[0];
    assert.ok(first !== undefined);
    const { topics } = await within(client.circle.enumTopics({ circleId: first.circleId }), CALL_TIMEOUT_MS, "enumTopics");
    assert.ok(topics.length >= 1);
    for (const topic of topics) {
      assert.equal(typeof topic.topicId, "string");
    }
  });

  it("an unknown circle rejects with CircleOperationFailed and the upstream message", async () => {
    const error = await rejection(client.circle.enumTopics({ circleId: "no-such-circle" }));
    assert.equal(error.code, -33004);
    assert.equal(error.code, ErrorCodes.CircleOperationFailed);
    assert.equal(error.name, "CircleOperationFailed");
    assert.equal(error.method, "circle/enumTopics");
    assert.equal(error.retryable, false);
    const data = error.data as { upstreamMessage?: unknown };
    assert.equal(typeof data.upstreamMessage, "string");
    assert.match(String(data.upstreamMessage), /not found/i);
  });

  it("params that break the schema reject with InvalidParams", async () => {
    const error = await rejection(client.circle.enumTopics({} as unknown as { circleId: string }));
    assert.equal(error.code, -32602);
    assert.equal(error.name, "InvalidParams");
  });

  it("discover() returns the same methods as protocol/circle-bridge.openrpc.json", async () => {
    const document = await within(client.discover(), CALL_TIMEOUT_MS, "rpc.discover");
    const onDisk = JSON.parse(fs.readFileSync(SPEC_PATH, "utf8")) as { methods: { name: string }[] };
    const names = (methods: { name: string }[]): string[] => methods.map((m) => m.name).sort();
    assert.equal(document.openrpc, "1.3.2");
    assert.deepEqual(names(document.methods), names(onDisk.methods));
    // ...and the generated method lists in src/protocol.ts are not stale either.
    assert.deepEqual([...REQUEST_METHODS, ...NOTIFICATION_METHODS].sort(), names(onDisk.methods));
  });

  it("has a wrapper on client.circle for every circle/* method of the protocol", () => {
    const wanted = REQUEST_METHODS.filter((name) => name.startsWith("circle/")).map((name) => name.slice("circle/".length));
    assert.ok(wanted.length >= 4);
    for (const name of wanted) {
      assert.equal(typeof (client.circle as unknown as Record<string, unknown>)[name], "function", name);
    }
  });

  it("cancelling a slow call rejects it with RequestCancelled", async () => {
    await emulator.setFaults({ serviceDelay: 5 });
    try {
      const source = new CancellationTokenSource();
      const call = client.circle.enumCircles(source.token);
      source.cancel();
      // -32800 comes only from the cancellation: had the call run out the 5 s delay, it would
      // have resolved with the circles.
      const error = await rejection(call);
      assert.equal(error.code, -32800);
      assert.equal(error.name, "RequestCancelled");
    } finally {
      await emulator.reset();
    }
    // The connection is still usable afterwards.
    const { circles } = await within(client.circle.enumCircles(), CALL_TIMEOUT_MS, "enumCircles after cancel");
    assert.ok(circles.length >= 1);
  });

  it("close() shuts the bridge down cleanly: exit code 0, later calls reject", async () => {
    const code = await within(client.close(), CALL_TIMEOUT_MS, "close()");
    assert.equal(code, 0);
    assert.equal(await client.close(), 0, "a second close() returns the same result");
    assert.equal(await client.closed, 0);
    const error = await rejection(client.circle.isServiceRunning());
    assert.equal(error.name, "ConnectionClosed");
  });
});

describe("disposal", () => {
  let emulator: Emulator;

  before(async () => {
    emulator = await startEmulator();
  });

  after(async () => {
    await emulator?.stop();
  });

  it("dispose() starts close() at once: the bridge shuts down cleanly, later calls reject", async () => {
    const client = await spawn({ command: BRIDGE_BIN, env: emulator.env });
    const result = client.dispose();
    assert.equal(result, undefined, "dispose() is synchronous, as VS Code's Disposable is");
    assert.equal(await within(client.closed, CALL_TIMEOUT_MS, "the bridge to exit"), 0);
    assert.equal(await client.close(), 0, "close() after dispose() returns the same outcome");
    const error = await rejection(client.circle.isServiceRunning());
    assert.equal(error.name, "ConnectionClosed");
  });

  it("await using closes the bridge when the block is left", async () => {
    let escaped: CircleBridgeClient | undefined;
    {
      await using client = await spawn({ command: BRIDGE_BIN, env: emulator.env });
      escaped = client;
      const { running } = await within(client.circle.isServiceRunning(), CALL_TIMEOUT_MS, "isServiceRunning");
      assert.equal(running, true);
    }
    // [Symbol.asyncDispose] awaited close(), so the exit code is already known.
    assert.equal(await Promise.race([escaped.closed, Promise.resolve("still running")]), 0);
  });
});

describe("spawn() failures", () => {
  it("rejects with ConnectionClosed when the command does not exist", async () => {
    const error = await rejection(spawn({ command: "/nonexistent/circle-bridge" }));
    assert.equal(error.name, "ConnectionClosed");
    assert.match(error.message, /ENOENT/);
  });

  it("rejects with ConnectionClosed, quoting stderr, when the bridge exits during the handshake", async () => {
    const error = await rejection(spawn({ command: BRIDGE_BIN, args: ["serve", "--no-such-flag"] }));
    assert.equal(error.name, "ConnectionClosed");
    assert.match(error.message, /exited with code [1-9]/);
    assert.match(error.message, /no-such-flag/);
  });

  it("a bridge without credentials answers circle calls with BadConfiguration", async () => {
    const blank = { CIRCLE_CUSTOMER_ID: "", CIRCLE_APP_KEY: "", CIRCLE_END_USER_ID: "", CIRCLE_SECRET: "" };
    const client = await spawn({ command: BRIDGE_BIN, env: blank });
    try {
      const error = await rejection(client.circle.initialize());
      assert.equal(error.code, ErrorCodes.BadConfiguration);
      assert.equal(error.name, "BadConfiguration");
    } finally {
      assert.equal(await within(client.close(), CALL_TIMEOUT_MS, "close()"), 0);
    }
  });
});
