// Where this user's circle-bridge daemon leaves what its clients need. The resolution must match
// circle_bridge/_runtime_dir.py exactly, or a TypeScript app and a Python app would look for two
// different daemons.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

/** The contents of `daemon.json` (protocol/README.md, "Transports"). */
export interface DaemonState {
  pid: number;
  version: string;
  /** Path of the JSON-RPC Unix socket, or null. */
  socket: string | null;
  /** "127.0.0.1:PORT" when the daemon listens on TCP, else null. */
  tcp: string | null;
  /** What a TCP client sends as `initializationOptions.authToken`. A secret: never log it. */
  authToken: string;
  /** A fingerprint of the Circle identity the daemon serves (a hash, never a secret). */
  identity: string;
  control: string;
  startedAt: number;
  log: string | null;
}

/**
 * The per-user runtime dir: `$CIRCLE_BRIDGE_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/circle-bridge`,
 * else `$TMPDIR/circle-bridge` on macOS, else `/tmp/circle-bridge-<uid>`. Empty variables count
 * as unset, as in the Python resolver.
 */
export function runtimeDir(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string {
  const own = env["CIRCLE_BRIDGE_RUNTIME_DIR"];
  if (own) {
    return own;
  }
  const xdg = env["XDG_RUNTIME_DIR"];
  if (xdg) {
    return path.join(xdg, "circle-bridge");
  }
  const tmp = env["TMPDIR"];
  if (platform === "darwin" && tmp) {
    return path.join(tmp, "circle-bridge");
  }
  return `/tmp/circle-bridge-${os.userInfo().uid}`;
}

/** The daemon's state file in `dir`, or undefined when there is none or it cannot be read. */
export function readDaemonState(dir: string = runtimeDir()): DaemonState | undefined {
  let text: string;
  try {
    text = fs.readFileSync(path.join(dir, "daemon.json"), "utf8");
  } catch {
    return undefined;
  }
  try {
    const data = JSON.parse(text) as Partial<DaemonState>;
    if (typeof data.pid !== "number" || typeof data.authToken !== "string") {
      return undefined; // half-written or foreign: no daemon, as the Python reader decides
    }
    return {
      pid: data.pid,
      version: String(data.version ?? ""),
      socket: data.socket ?? null,
      tcp: data.tcp ?? null,
      authToken: data.authToken,
      identity: String(data.identity ?? ""),
      control: String(data.control ?? ""),
      startedAt: Number(data.startedAt ?? 0),
      log: data.log ?? null,
    };
  } catch {
    return undefined;
  }
}

/** Split "127.0.0.1:PORT" or "[::1]:PORT". */
export function parseTcpAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(":");
  const host = address.slice(0, colon).replace(/^\[|\]$/g, "");
  return { host, port: Number(address.slice(colon + 1)) };
}
