// Runs examples/quickstart.ts (the README's example) as a user would: a separate Node process,
// `circle-bridge` found on PATH, the CIRCLE_* settings in its environment.
import * as assert from "node:assert/strict";
import * as childProcess from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, it } from "node:test";

import { BRIDGE_BIN, type Emulator, PACKAGE_DIR, startEmulator, within } from "../test-support/support";

let emulator: Emulator;
let binDir: string;

before(async () => {
  emulator = await startEmulator();
  // Whatever CIRCLE_BRIDGE_BIN is called, the example finds it as `circle-bridge` on PATH.
  binDir = fs.mkdtempSync(path.join(os.tmpdir(), "circle-bridge-bin-"));
  fs.symlinkSync(BRIDGE_BIN, path.join(binDir, "circle-bridge"));
});

after(async () => {
  await emulator?.stop();
  fs.rmSync(binDir, { recursive: true, force: true });
});

it("examples/quickstart runs against the emulator", async () => {
  const child = childProcess.spawn(process.execPath, [path.join(PACKAGE_DIR, "dist", "examples", "quickstart.js")], {
    env: { ...process.env, ...emulator.env, PATH: `${binDir}${path.delimiter}${process.env["PATH"] ?? ""}` },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (text: string) => (stdout += text));
  child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  const code = await within(
    new Promise<number | null>((resolve) => child.once("close", resolve)),
    30_000,
    "quickstart to finish",
  ).finally(() => child.kill("SIGKILL"));
  assert.equal(code, 0, stderr);
  const lines = stdout.trim().split("\n");
  assert.match(lines[0] ?? "", /^connected to circle-bridge \S+$/);
  assert.ok(lines.length >= 5, stdout); // connected, >= 1 circle, the error, the exit code
  assert.match(stdout, /^CircleOperationFailed \(-33004\): \{.*"upstreamMessage":".+".*\}$/m);
  assert.equal(lines.at(-1), "bridge exit code: 0");
});
