// connect() over a Unix socket and over TCP, against a tiny net.Server in support.ts that pipes each
// connection to a real `circle-bridge serve --stdio` (so each test sees its own exit code). The
// shared daemon itself is tested in daemon.test.ts.
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { CircleBridgeError, connect } from "../src/index";
import { type Emulator, startEmulator, startSocketProxy, within } from "../test-support/support";

const CALL_TIMEOUT_MS = 15_000;

describe("connect()", () => {
  let emulator: Emulator;
  let tmp: string;

  before(async () => {
    emulator = await startEmulator();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), "circle-bridge-ts-"));
  });

  after(async () => {
    await emulator?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  for (const transport of ["unix", "tcp"] as const) {
    it(`talks to the bridge over ${transport}`, async () => {
      const proxy = await startSocketProxy(
        transport === "unix" ? { path: path.join(tmp, "bridge.sock") } : { host: "127.0.0.1", port: 0 },
        emulator.env,
      );
      try {
        const client = await within(connect({ ...proxy.address, clientName: "node-test" }), CALL_TIMEOUT_MS, "connect()");
        assert.equal(client.serverInfo.name, "circle-bridge");
        const { circles } = await within(client.circle.enumCircles(), CALL_TIMEOUT_MS, "enumCircles");
        assert.ok(circles.length >= 1);
        assert.equal(await within(client.close(), CALL_TIMEOUT_MS, "close()"), null);
        // The bridge behind the socket got shutdown + exit, so it exited 0 on its own.
        assert.deepEqual(proxy.exitCodes, [0]);
      } finally {
        await proxy.stop();
      }
    });
  }

  it("a call in flight rejects with ConnectionClosed when the bridge dies", async () => {
    const proxy = await startSocketProxy({ host: "127.0.0.1", port: 0 }, emulator.env);
    await emulator.setFaults({ serviceDelay: 5 });
    try {
      const client = await within(connect(proxy.address), CALL_TIMEOUT_MS, "connect()");
      const call = client.circle.enumCircles();
      await proxy.killBridges();
      let caught: unknown;
      try {
        await within(call, CALL_TIMEOUT_MS, "the pending call to settle");
      } catch (error) {
        caught = error;
      }
      assert.ok(caught instanceof CircleBridgeError, String(caught));
      assert.equal(caught.name, "ConnectionClosed");
      assert.equal(caught.method, "circle/enumCircles");
      assert.equal(await within(client.closed, CALL_TIMEOUT_MS, "client.closed"), null);
      assert.equal(await within(client.close(), CALL_TIMEOUT_MS, "close() of a dead connection"), null);
    } finally {
      await emulator.reset();
      await proxy.stop();
    }
  });

  it("rejects with ConnectionClosed when nothing listens there", async () => {
    let caught: unknown;
    try {
      await within(connect({ path: path.join(tmp, "nobody-here.sock") }), CALL_TIMEOUT_MS, "connect()");
    } catch (error) {
      caught = error;
    }
    assert.ok(caught instanceof CircleBridgeError, String(caught));
    assert.equal(caught.name, "ConnectionClosed");
    assert.match(caught.message, /ENOENT|ECONNREFUSED/);
  });
});
