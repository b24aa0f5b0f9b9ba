/**
 * A TypeScript client for circle-bridge: JSON-RPC 2.0 over LSP framing, on vscode-jsonrpc.
 *
 *     const client = await spawn({ env: { CIRCLE_CUSTOMER_ID: "…", … } });
 *     const { circles } = await client.circle.enumCircles();
 *     await client.close();
 */
import { type CircleBridgeClient, type HandshakeOptions, open } from "./client";
import { processEndpoint, type SocketAddress, socketEndpoint } from "./endpoint";
import { type DaemonState, parseTcpAddress, readDaemonState, runtimeDir } from "./daemon";
import { CircleBridgeError, ClientErrorCodes } from "./errors";

export { CancellationToken, CancellationTokenSource } from "vscode-jsonrpc/node";
export { CircleBridgeClient, type HandshakeOptions } from "./client";
export type { SocketAddress } from "./endpoint";
export { type DaemonState, readDaemonState, runtimeDir } from "./daemon";
export {
  CircleBridgeError,
  type CircleBridgeErrorName,
  type ClientErrorName,
  ClientErrorCodes,
  errorName,
} from "./errors";
export * from "./protocol";

/** Options of `spawn()`. */
export interface SpawnOptions extends HandshakeOptions {
  /** The bridge executable. Default `$CIRCLE_BRIDGE_BIN` if set, else "circle-bridge" (looked up on PATH). */
  command?: string;
  /** Its arguments. Default ["serve", "--stdio"]. */
  args?: string[];
  /**
   * Variables set on top of this process's environment, e.g. the `CIRCLE_*` settings
   * (CIRCLE_CUSTOMER_ID, CIRCLE_APP_KEY, CIRCLE_END_USER_ID, CIRCLE_SECRET, CIRCLE_TOKEN_URL,
   * CIRCLE_SERVICE_URL).
   */
  env?: Record<string, string>;
  /** Working directory of the bridge. Default: this process's. */
  cwd?: string;
  /**
   * Receives the bridge's log output (its stderr) as it comes, e.g. to append it to a VS Code
   * OutputChannel. Without it the log is read and dropped, except the tail that failed-start
   * errors quote.
   */
  onStderr?: (text: string) => void;
}

/**
 * Start `circle-bridge serve --stdio` as a child process and run the `initialize` handshake.
 *
 * Rejects with a `CircleBridgeError`: `ConnectionClosed` when the bridge cannot be started or
 * exits (the message quotes its exit status and the end of its stderr) or does not answer within
 * `startTimeoutMs`; the bridge's own error when it answers `initialize` with one. Call `close()`
 * on the client when done: the child keeps Node's event loop alive until then.
 */
export function spawn(options: SpawnOptions = {}): Promise<CircleBridgeClient> {
  const endpoint = processEndpoint({
    command: options.command ?? bridgeCommand(options.env),
    args: options.args ?? ["serve", "--stdio"],
    env: { ...process.env, ...options.env },
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    ...(options.onStderr === undefined ? {} : { onStderr: options.onStderr }),
  });
  return open(endpoint, options);
}

/** `$CIRCLE_BRIDGE_BIN` (from `env`, else this process's environment), else "circle-bridge". */
function bridgeCommand(env: Record<string, string> | undefined): string {
  return env?.["CIRCLE_BRIDGE_BIN"] || process.env["CIRCLE_BRIDGE_BIN"] || "circle-bridge";
}

/**
 * Options of `connect()`: where the bridge listens, plus the handshake options. On a daemon's TCP
 * port pass its `authToken` (from daemon.json; `attach({ transport: "tcp" })` does that for you).
 */
export type ConnectOptions = SocketAddress & HandshakeOptions;

/**
 * Attach to a bridge that already listens on a Unix socket (`{ path }`) or on TCP
 * (`{ host?, port }`, host defaults to 127.0.0.1) and run the `initialize` handshake.
 * `close()` on the client resolves with `null` (there is no child process to report on).
 *
 * Rejects with a `CircleBridgeError` named `ConnectionClosed` when nothing listens there or the
 * peer hangs up during the handshake.
 */
export async function connect(options: ConnectOptions): Promise<CircleBridgeClient> {
  let endpoint;
  try {
    endpoint = await socketEndpoint(options);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new CircleBridgeError(ClientErrorCodes.ConnectionClosed, message, { method: "initialize", cause: error });
  }
  return open(endpoint, options);
}

/** Options of `attach()`. */
export interface AttachOptions extends HandshakeOptions {
  /**
   * How to reach this user's daemon (README, "One session for all your apps"):
   * - "socket" (default): its Unix socket, as named in daemon.json (else `bridge.sock` in the
   *   runtime dir). Fails if no daemon runs.
   * - "tcp": its TCP port with the `authToken`, both read from daemon.json. Fails if no daemon
   *   runs or it does not listen on TCP (`circle-bridge serve --socket --tcp 0`).
   * - "connect": run `circle-bridge connect`, which attaches to the daemon or starts one (detached,
   *   exiting when idle); the session is the daemon's. Works on a cold machine.
   */
  transport?: "socket" | "tcp" | "connect";
  /** The runtime dir holding daemon.json. Default: `runtimeDir()`, resolved as the Python CLI does. */
  runtimeDir?: string;
  /** "connect" only: the bridge executable. Default `$CIRCLE_BRIDGE_BIN`, else "circle-bridge". */
  command?: string;
  /**
   * "connect" only: variables on top of this process's environment; the `CIRCLE_*` settings name
   * the identity, and a daemon serving another identity is refused, never used.
   */
  env?: Record<string, string>;
  /** "connect" only: receives `circle-bridge connect`'s stderr (why it could not attach). */
  onStderr?: (text: string) => void;
}

/**
 * Attach to this user's shared daemon: one token and one session for every app of the user.
 * `close()` ends only this connection; the daemon goes on serving the others.
 *
 * Rejects with a `CircleBridgeError` named `ConnectionClosed` when no daemon runs there ("socket",
 * "tcp") or `connect` cannot attach (its message is quoted), and with `Unauthenticated`
 * (-33010) when the daemon refuses the TCP token.
 */
export async function attach(options: AttachOptions = {}): Promise<CircleBridgeClient> {
  const transport = options.transport ?? "socket";
  const dir = options.runtimeDir ?? runtimeDir({ ...process.env, ...options.env });
  if (transport === "connect") {
    return spawn({
      ...options,
      args: ["connect"],
      env: { ...options.env, ...(options.runtimeDir === undefined ? {} : { CIRCLE_BRIDGE_RUNTIME_DIR: options.runtimeDir }) },
    });
  }
  const state: DaemonState | undefined = readDaemonState(dir);
  if (transport === "socket") {
    return connect({ ...options, path: state?.socket ?? `${dir}/bridge.sock` });
  }
  if (state?.tcp == null) {
    throw new CircleBridgeError(ClientErrorCodes.ConnectionClosed, `no daemon listening on TCP is recorded in ${dir}/daemon.json`, {
      method: "initialize",
    });
  }
  return connect({ ...options, ...parseTcpAddress(state.tcp), authToken: options.authToken ?? state.authToken });
}
