// End to end, the Circle API beyond listing: this package's spawn() -> a real `circle-bridge serve
// --stdio` -> a real emulator. The backend's part (decrypting unlock codes) is played by the real
// `circle-bridge unlock-codes decrypt` command, as a developer's backend would run it.
import * as assert from "node:assert/strict";
import * as childProcess from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { CancellationTokenSource, CircleBridgeClient, CircleBridgeError, spawn } from "../src/index";
import { BRIDGE_BIN, type Emulator, startEmulator, within } from "../test-support/support";

const CALL_TIMEOUT_MS = 15_000;

async function rejection(promise: Promise<unknown>): Promise<CircleBridgeError> {
  try {
    await within(promise, CALL_TIMEOUT_MS, "the call to fail");
  } catch (error) {
    assert.ok(error instanceof CircleBridgeError, `expected a CircleBridgeError, got ${String(error)}`);
    return error;
  }
  assert.fail("the call succeeded");
}

/** The backend's step: `circle-bridge unlock-codes decrypt` with the emulator's demo private key. */
function decryptAsBackend(privateKey: string, lockUserResult: unknown): string[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "circle-backend-"));
  try {
    const keyFile = path.join(dir, "circle-private.key");
    fs.writeFileSync(keyFile, privateKey, { mode: 0o600 });
    const done = childProcess.spawnSync(BRIDGE_BIN, ["unlock-codes", "decrypt", "--private-key-file", keyFile, "--json"], {
      input: JSON.stringify(lockUserResult),
      encoding: "utf-8",
      timeout: 60_000,
    });
    assert.equal(done.status, 0, done.stderr);
    return JSON.parse(done.stdout) as string[];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe("the Circle API through spawn()", () => {
  let emulator: Emulator;
  let client: CircleBridgeClient;
  let circleId: string;

  before(async () => {
    emulator = await startEmulator();
    client = await spawn({ command: BRIDGE_BIN, env: emulator.env, clientName: "node-api-test" });
  });

  after(async () => {
    await client?.close();
    await emulator?.stop();
  });

  it("createCircle makes a circle with one topic", async () => {
    const created = await within(client.circle.createCircle({ circleName: "TS ✓" }), CALL_TIMEOUT_MS, "createCircle");
    assert.equal(typeof created.circleId, "string");
    circleId = created.circleId ?? "";
    const { circles } = await client.circle.enumCircles();
    assert.ok(circles.some((c) => c.circleId === circleId && c.circleName === "TS ✓"));
    const { topics } = await client.circle.enumTopics({ circleId });
    assert.deepEqual(
      topics.map((t) => t.topicName),
      ["General"],
    );
  });

  it("createCircle can be cancelled", async () => {
    const source = new CancellationTokenSource();
    const call = client.circle.createCircle({ circleName: "never mind", workDoneToken: "ts-1" }, source.token);
    source.cancel();
    const error = await rejection(call);
    assert.equal(error.name, "RequestCancelled");
  });

  it("putSecret then getSecret returns the newest value; a missing name is found: false", async () => {
    await client.circle.putSecret({ name: "ts-key", value: "one" });
    await client.circle.putSecret({ name: "ts-key", value: "two" });
    const got = await client.circle.getSecret({ name: "ts-key" });
    assert.equal(got.found, true);
    assert.equal(got.value, "two");
    assert.equal((await client.circle.getSecret({ name: "ts-absent" })).found, false);
  });

  it("addMessage with three fields; getMessages gives ISO times and filters by type", async () => {
    const [topic] = (await client.circle.enumTopics({ circleId })).topics;
    assert.ok(topic);
    const where = { circleId, topicId: topic.topicId };
    await client.circle.addMessage({ ...where, message: "hello" });
    await client.circle.addMessage({ ...where, message: "typed", messageType: 5 });
    const all = (await client.circle.getMessages(where)).messages;
    assert.deepEqual(
      all.map((m) => m.message),
      ["hello", "typed"],
    );
    for (const m of all) {
      assert.equal(new Date(m.time ?? "").getTime(), m.messageTimeOffset);
    }
    const fives = (await client.circle.getMessages({ ...where, msgTypeFilters: [5] })).messages;
    assert.deepEqual(
      fives.map((m) => m.message),
      ["typed"],
    );
  });

  it("lockUser -> backend decrypts -> unlockUser; whoAmI shows locked before and after", async () => {
    assert.equal((await client.circle.whoAmI({ circleId })).locked, false);
    const locked = await client.circle.lockUser({ circleId });
    assert.equal(locked.encryptedUnlockCodes.length, 2);
    assert.equal((await client.circle.whoAmI({ circleId })).locked, true);
    const privateKey = (emulator.info as unknown as { privateKey: string }).privateKey;
    const codes = decryptAsBackend(privateKey, locked);
    assert.equal(codes.length, 2);
    await client.circle.unlockUser({ circleId, unlockCodes: codes });
    assert.equal((await client.circle.whoAmI({ circleId })).locked, false);
    const again = await rejection(client.circle.unlockUser({ circleId, unlockCodes: codes }));
    assert.equal(again.name, "CircleOperationFailed");
  });

  it("invites and files (experimental methods)", async () => {
    const { invite } = await client.circle.genInvite({ circleId });
    assert.ok(invite?.inviteId && invite.authCode);
    const accepted = await client.circle.processInvite({ inviteId: invite.inviteId, authCode: invite.authCode });
    assert.equal(typeof accepted.requestAuthVerificationId, "string");
    const [topic] = (await client.circle.enumTopics({ circleId })).topics;
    assert.ok(topic);
    await client.circle.addFile({ circleId, topicId: topic.topicId, filePath: "/tmp/ts-notes.txt" });
    const { files } = await client.circle.enumFiles({ circleId, topicId: topic.topicId });
    assert.deepEqual(
      files.map((f) => f.fileName),
      ["ts-notes.txt"],
    );
  });

  it("decrypt opens an attachment sealed to its topic", async () => {
    const [topic] = (await client.circle.enumTopics({ circleId })).topics;
    assert.ok(topic);
    const where = { circleId, topicId: topic.topicId };
    const { messages } = await client.circle.addMessage({ ...where, message: "scan", base64Data: "aGk=" });
    const sealed = messages?.["base64Data"];
    assert.equal(typeof sealed, "string");
    const opened = await client.circle.decrypt({ ...where, toDecrypt: sealed as string });
    assert.equal(opened.decryptedData, "aGk=");
  });
});
