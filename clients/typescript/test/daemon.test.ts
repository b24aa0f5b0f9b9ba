// attach() to a real daemon (`circle-bridge serve --socket --tcp 0`, or one that `circle-bridge
// connect` starts), against the real emulator; and the server-to-client notifications.
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { attach, CircleBridgeError, type CircleBridgeClient, connect, readDaemonState, runtimeDir, spawn } from "../src/index";
import { parseTcpAddress } from "../src/daemon";
import type { ProgressParams, TokenNeededParams } from "../src/protocol";
import {
  BRIDGE_BIN,
  type Daemon,
  type Emulator,
  privateRuntimeDir,
  startDaemon,
  startEmulator,
  stopDaemonIn,
  within,
} from "../test-support/support";

const CALL_TIMEOUT_MS = 30_000;

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("expected a rejection");
}

describe("runtimeDir()", () => {
  it("resolves as the Python CLI does", () => {
    assert.equal(runtimeDir({ CIRCLE_BRIDGE_RUNTIME_DIR: "/x/own", XDG_RUNTIME_DIR: "/run/user/7" }, "linux"), "/x/own");
    assert.equal(runtimeDir({ CIRCLE_BRIDGE_RUNTIME_DIR: "", XDG_RUNTIME_DIR: "/run/user/7" }, "linux"), "/run/user/7/circle-bridge");
    assert.equal(runtimeDir({ TMPDIR: "/var/folders/ab/T/" }, "darwin"), "/var/folders/ab/T/circle-bridge");
    const uid = process.getuid?.() ?? 0;
    assert.equal(runtimeDir({ TMPDIR: "/var/folders/ab/T/" }, "linux"), `/tmp/circle-bridge-${uid}`);
    assert.equal(runtimeDir({}, "darwin"), `/tmp/circle-bridge-${uid}`);
  });
});

describe("attach()", () => {
  let emulator: Emulator;
  let daemon: Daemon;

  before(async () => {
    emulator = await startEmulator();
    daemon = await startDaemon(emulator.env);
  });

  after(async () => {
    await daemon?.stop();
    await emulator?.stop();
  });

  it("reads daemon.json from the runtime dir", () => {
    const state = readDaemonState(daemon.runtimeDir);
    assert.ok(state !== undefined);
    assert.equal(state.pid, daemon.announced.pid);
    assert.equal(state.socket, daemon.announced.socket);
    assert.equal(state.tcp, daemon.announced.tcp);
    assert.ok(state.authToken.length >= 32);
    assert.equal(readDaemonState(path.join(daemon.runtimeDir, "nowhere")), undefined);
  });

  it("shares one session between a socket client and a TCP client: one token request", async () => {
    await emulator.reset();
    const env = { CIRCLE_BRIDGE_RUNTIME_DIR: daemon.runtimeDir };
    const viaSocket = await within(attach({ env, clientName: "ts-socket" }), CALL_TIMEOUT_MS, "attach socket");
    const viaTcp = await within(attach({ transport: "tcp", runtimeDir: daemon.runtimeDir }), CALL_TIMEOUT_MS, "attach tcp");
    try {
      const [a, b] = await within(
        Promise.all([viaSocket.circle.enumCircles(), viaTcp.circle.enumCircles()]),
        CALL_TIMEOUT_MS,
        "enumCircles on both",
      );
      assert.ok(a.circles.length >= 1);
      assert.deepEqual(b, a);
      assert.equal((await emulator.stats())["tokenRequests"], 1);
    } finally {
      // close() ends only this connection: the daemon keeps serving the other one
      assert.equal(await within(viaSocket.close(), CALL_TIMEOUT_MS, "close socket"), null);
      assert.ok((await within(viaTcp.circle.enumCircles(), CALL_TIMEOUT_MS, "after the other closed")).circles.length >= 1);
      await viaTcp.close();
    }
    assert.equal((await emulator.stats())["tokenRequests"], 1);
  });

  it("refuses a TCP client without the token, and executes nothing", async () => {
    await emulator.reset();
    const address = parseTcpAddress(daemon.announced.tcp);
    const error = await rejection(within(connect(address), CALL_TIMEOUT_MS, "connect without token"));
    assert.ok(error instanceof CircleBridgeError, String(error));
    assert.equal(error.name, "Unauthenticated");
    assert.equal(error.code, -33010);
    const wrong = await rejection(within(connect({ ...address, authToken: "not-the-token" }), CALL_TIMEOUT_MS, "wrong token"));
    assert.ok(wrong instanceof CircleBridgeError, String(wrong));
    assert.equal(wrong.code, -33010);
    const stats = await emulator.stats();
    assert.equal(stats["tokenRequests"], 0);
    assert.equal(stats["serviceRequests"], 0);
  });

  it("reports a runtime dir without a daemon as ConnectionClosed", async () => {
    const empty = privateRuntimeDir();
    try {
      for (const transport of ["socket", "tcp"] as const) {
        const error = await rejection(within(attach({ transport, runtimeDir: empty }), CALL_TIMEOUT_MS, "attach"));
        assert.ok(error instanceof CircleBridgeError, String(error));
        assert.equal(error.name, "ConnectionClosed");
        assert.ok(error.message.includes(empty), error.message);
      }
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });

  it("reports $/progress of createCircle, and cancels it through window/workDoneProgress/cancel", async () => {
    await emulator.reset();
    const client = await within(attach({ runtimeDir: daemon.runtimeDir }), CALL_TIMEOUT_MS, "attach");
    try {
      const seen: ProgressParams[] = [];
      const subscription = client.onNotification("$/progress", (params) => seen.push(params));
      const created = await within(client.circle.createCircle({ circleName: "ts progress", workDoneToken: "ts-1" }), CALL_TIMEOUT_MS, "createCircle");
      assert.ok(created.circleId);
      assert.deepEqual(seen.map((p) => p.token).filter((t) => t !== "ts-1"), []);
      assert.equal(seen[0]?.value.kind, "begin");
      assert.equal(seen.at(-1)?.value.kind, "end");

      await emulator.setFaults({ serviceDelay: 20 });
      const begun = new Promise<void>((resolve) => {
        client.onNotification("$/progress", (params) => {
          if (params.token === "ts-2" && params.value.kind === "begin") resolve();
        });
      });
      const slow = client.circle.createCircle({ circleName: "never", workDoneToken: "ts-2" });
      await within(begun, CALL_TIMEOUT_MS, "progress begin");
      await client.notify("window/workDoneProgress/cancel", { token: "ts-2" });
      const cancelled = await rejection(within(slow, CALL_TIMEOUT_MS, "the cancelled createCircle"));
      assert.ok(cancelled instanceof CircleBridgeError, String(cancelled));
      assert.equal(cancelled.name, "RequestCancelled");

      subscription.dispose();
      const before = seen.length;
      await emulator.setFaults({ serviceDelay: 0 });
      await within(client.circle.createCircle({ circleName: "unsubscribed", workDoneToken: "ts-3" }), CALL_TIMEOUT_MS, "createCircle");
      assert.equal(seen.length, before);
    } finally {
      await emulator.reset();
      await client.close();
    }
  });
});

describe("attach({ transport: 'connect' })", () => {
  let emulator: Emulator;

  before(async () => {
    emulator = await startEmulator();
  });

  after(async () => {
    await emulator?.stop();
  });

  it("starts one daemon on a cold machine and two apps share its session", async () => {
    const dir = privateRuntimeDir();
    const clients: CircleBridgeClient[] = [];
    try {
      const options = { transport: "connect" as const, command: BRIDGE_BIN, env: emulator.env, runtimeDir: dir };
      clients.push(...(await within(Promise.all([attach(options), attach(options)]), CALL_TIMEOUT_MS, "two attaches")));
      for (const client of clients) {
        assert.ok((await within(client.circle.enumCircles(), CALL_TIMEOUT_MS, "enumCircles")).circles.length >= 1);
      }
      assert.equal((await emulator.stats())["tokenRequests"], 1);
      const state = readDaemonState(dir);
      assert.ok(state !== undefined, "connect started a daemon and recorded it");
      // connect's own exit code: 0 after shutdown + exit; the daemon lives on for other apps
      assert.deepEqual(await Promise.all(clients.map((client) => client.close())), [0, 0]);
      assert.ok(readDaemonState(dir) !== undefined);
    } finally {
      await Promise.all(clients.map((client) => client.close()));
      await stopDaemonIn(dir);
    }
  });
});

describe("circle/tokenNeeded", () => {
  it("reaches onNotification when the client token source has no token yet", async () => {
    const emulator = await startEmulator();
    const { CIRCLE_SECRET: _secret, ...withoutSecret } = emulator.env;
    const client = await within(
      spawn({ command: BRIDGE_BIN, env: { ...withoutSecret, CIRCLE_TOKEN_SOURCE: "client" } }),
      CALL_TIMEOUT_MS,
      "spawn",
    );
    try {
      const needed = new Promise<TokenNeededParams>((resolve) => client.onNotification("circle/tokenNeeded", resolve));
      const error = await rejection(within(client.circle.enumCircles(), CALL_TIMEOUT_MS, "enumCircles"));
      assert.ok(error instanceof CircleBridgeError, String(error));
      assert.equal(error.code, -33020);
      const params = await within(needed, CALL_TIMEOUT_MS, "circle/tokenNeeded");
      assert.equal(params.reason, "missing");
      assert.throws(() => client.onNotification("circle/nope" as "$/progress", () => {}), TypeError);
    } finally {
      await client.close();
      await emulator.stop();
    }
  });
});

describe("spawn() and $CIRCLE_BRIDGE_BIN", () => {
  it("runs the executable $CIRCLE_BRIDGE_BIN names when no command is given", async () => {
    const missing = "/nonexistent/circle-bridge-from-env";
    const error = await rejection(within(spawn({ env: { CIRCLE_BRIDGE_BIN: missing } }), CALL_TIMEOUT_MS, "spawn"));
    assert.ok(error instanceof CircleBridgeError, String(error));
    assert.ok(error.message.includes(missing), error.message);
    const client = await within(spawn({ env: { CIRCLE_BRIDGE_BIN: BRIDGE_BIN } }), CALL_TIMEOUT_MS, "spawn");
    assert.equal(client.serverInfo.name, "circle-bridge");
    assert.equal(await client.close(), 0);
  });
});
