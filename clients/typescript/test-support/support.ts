// Real processes for the tests: the Circle emulator and the bridge binary. No mocks.
import * as childProcess from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import * as readline from "node:readline";

/** clients/typescript, from dist/test-support/ */
export const PACKAGE_DIR = path.resolve(__dirname, "..", "..");
export const REPO_DIR = path.resolve(PACKAGE_DIR, "..", "..");
export const BRIDGE_BIN = process.env["CIRCLE_BRIDGE_BIN"] ?? path.resolve(PACKAGE_DIR, "../../.venv/bin/circle-bridge");
export const SPEC_PATH = path.join(REPO_DIR, "protocol", "circle-bridge.openrpc.json");

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

/** What `circle-bridge emulator` prints on its one stdout line. */
export interface EmulatorInfo {
  tokenUrl: string;
  serviceUrl: string;
  controlUrl: string;
  caFile: string | null;
  customerId: string;
  appKey: string;
  endUserId: string;
  secret: string;
  tokenTtl: number;
}

export interface Emulator {
  readonly info: EmulatorInfo;
  /** The CIRCLE_* settings that point a bridge at this emulator. */
  readonly env: Record<string, string>;
  setFaults(faults: Record<string, boolean | number>): Promise<void>;
  /** The emulator's request counters (`tokenRequests`, `serviceRequests`, `enumCircles`, ...). */
  stats(): Promise<Record<string, number>>;
  reset(): Promise<void>;
  stop(): Promise<void>;
}

/** Resolve with `promise`, or reject after `ms` with `what` in the message. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function stopChild(child: childProcess.ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return;
  }
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  try {
    await within(exited, STOP_TIMEOUT_MS, "emulator to exit on SIGTERM");
  } catch {
    child.kill("SIGKILL");
    await exited;
  }
}

async function post(url: string, body: unknown): Promise<void> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  if (!response.ok) {
    throw new Error(`POST ${url} answered ${response.status}: ${await response.text()}`);
  }
}

/** Start `circle-bridge emulator` and read its JSON line. */
export async function startEmulator(): Promise<Emulator> {
  const child = childProcess.spawn(BRIDGE_BIN, ["emulator"], { stdio: ["ignore", "pipe", "inherit"] });
  const spawnFailed = new Promise<never>((_, reject) => child.once("error", reject));
  const lines = readline.createInterface({ input: child.stdout });
  const firstLine = new Promise<string>((resolve, reject) => {
    lines.once("line", resolve);
    child.once("exit", (code) => reject(new Error(`emulator exited with ${String(code)} before printing its URLs`)));
  });
  let info: EmulatorInfo;
  try {
    info = JSON.parse(await within(Promise.race([firstLine, spawnFailed]), START_TIMEOUT_MS, "emulator's JSON line")) as EmulatorInfo;
  } catch (error) {
    await stopChild(child);
    throw error;
  } finally {
    lines.close();
  }
  child.stdout.resume(); // nothing more is expected; never let the pipe fill
  const env: Record<string, string> = {
    CIRCLE_CUSTOMER_ID: info.customerId,
    CIRCLE_APP_KEY: info.appKey,
    CIRCLE_END_USER_ID: info.endUserId,
    CIRCLE_SECRET: info.secret,
    CIRCLE_TOKEN_URL: info.tokenUrl,
    CIRCLE_SERVICE_URL: info.serviceUrl,
  };
  if (info.caFile !== null) {
    env["CIRCLE_CA_FILE"] = info.caFile;
  }
  return {
    info,
    env,
    setFaults: (faults) => post(`${info.controlUrl}/faults`, faults),
    stats: async () => {
      const response = await fetch(`${info.controlUrl}/state`, { signal: AbortSignal.timeout(10_000) });
      return ((await response.json()) as { stats: Record<string, number> }).stats;
    },
    reset: () => post(`${info.controlUrl}/reset`, {}),
    stop: () => stopChild(child),
  };
}

/**
 * A stand-in for the daemon that does not exist yet: a net.Server on `listenOn` that, for every
 * connection, starts a real `circle-bridge serve --stdio` and pipes the socket to its stdio
 * both ways, closing the socket when the bridge exits. It lets `connect()` be tested against the
 * real bridge and real framing over a real socket.
 */
export async function startSocketProxy(
  listenOn: { path: string } | { host: string; port: 0 },
  env: Record<string, string>,
): Promise<{
  address: { path: string } | { host: string; port: number };
  /** Exit codes of the bridges that ended so far (-1: killed by a signal). */
  exitCodes: number[];
  /** SIGKILL every bridge behind the proxy, as a crash would. */
  killBridges(): Promise<void>;
  stop(): Promise<void>;
}> {
  const children = new Set<childProcess.ChildProcess>();
  const exitCodes: number[] = [];
  // allowHalfOpen: the client half-closes after `exit`; the socket closes once the bridge exits.
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const child = childProcess.spawn(BRIDGE_BIN, ["serve", "--stdio"], {
      env: { ...process.env, ...env },
      stdio: ["pipe", "pipe", "inherit"],
    });
    children.add(child);
    socket.on("error", () => child.kill("SIGTERM"));
    child.stdin.on("error", () => {});
    socket.pipe(child.stdin);
    child.stdout.pipe(socket, { end: false }); // ended below, once the exit code is known
    child.once("close", (code) => {
      children.delete(child);
      exitCodes.push(code ?? -1);
      socket.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listenOn, () => resolve());
  });
  const bound = server.address();
  const address = "path" in listenOn || typeof bound !== "object" || bound === null ? { path: String(bound) } : { host: listenOn.host, port: bound.port };
  return {
    address,
    exitCodes,
    killBridges: async () => {
      const running = [...children];
      const exited = running.map((child) => new Promise<void>((resolve) => child.once("close", () => resolve())));
      running.forEach((child) => child.kill("SIGKILL"));
      await within(Promise.all(exited), STOP_TIMEOUT_MS, "bridges to die");
    },
    stop: async () => {
      await Promise.all([...children].map((child) => stopChild(child)));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A daemon this test started: `circle-bridge serve --socket --tcp 0` in its own runtime dir. */
export interface Daemon {
  readonly runtimeDir: string;
  /** What it printed on its first stdout line (the daemon.json keys, without the token). */
  readonly announced: { pid: number; socket: string; tcp: string };
  /** SIGTERM (which drains) and wait for it; then remove the runtime dir. */
  stop(): Promise<void>;
}

/**
 * A short private runtime dir under /tmp: a socket path must fit in 103 bytes, which
 * os.tmpdir()-based paths on macOS may not.
 */
export function privateRuntimeDir(): string {
  return fs.mkdtempSync("/tmp/cb-ts-");
}

export async function startDaemon(env: Record<string, string>, runtimeDir: string = privateRuntimeDir()): Promise<Daemon> {
  const child = childProcess.spawn(BRIDGE_BIN, ["serve", "--socket", "--tcp", "0"], {
    env: { ...process.env, ...env, CIRCLE_BRIDGE_RUNTIME_DIR: runtimeDir },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = readline.createInterface({ input: child.stdout });
  const firstLine = new Promise<string>((resolve, reject) => {
    lines.once("line", resolve);
    child.once("exit", (code) => reject(new Error(`daemon exited with ${String(code)} before announcing itself`)));
  });
  let announced: Daemon["announced"];
  try {
    announced = JSON.parse(await within(firstLine, START_TIMEOUT_MS, "daemon's JSON line")) as Daemon["announced"];
  } catch (error) {
    await stopChild(child);
    throw error;
  } finally {
    lines.close();
  }
  child.stdout.resume();
  return {
    runtimeDir,
    announced,
    stop: async () => {
      await stopChild(child);
      fs.rmSync(runtimeDir, { recursive: true, force: true });
    },
  };
}

/** Stop the daemon that `circle-bridge connect` started in `runtimeDir` (`circle-bridge stop`). */
export async function stopDaemonIn(runtimeDir: string): Promise<void> {
  await new Promise<void>((resolve) => {
    const child = childProcess.spawn(BRIDGE_BIN, ["stop"], {
      env: { ...process.env, CIRCLE_BRIDGE_RUNTIME_DIR: runtimeDir },
      stdio: "ignore",
    });
    child.once("exit", () => resolve());
    child.once("error", () => resolve());
  });
  fs.rmSync(runtimeDir, { recursive: true, force: true });
}
