/**
 * A TypeScript client for circle-bridge: JSON-RPC 2.0 over LSP framing, on vscode-jsonrpc.
 *
 *     const client = await spawn({ env: { CIRCLE_CUSTOMER_ID: "…", … } });
 *     const { circles } = await client.circle.enumCircles();
 *     await client.close();
 */
import { type CircleBridgeClient, type HandshakeOptions, open } from "./client";
import { processEndpoint, type SocketAddress, socketEndpoint } from "./endpoint";
import { CircleBridgeError, ClientErrorCodes } from "./errors";

export { CancellationToken, CancellationTokenSource } from "vscode-jsonrpc/node";
export { CircleBridgeClient, type HandshakeOptions } from "./client";
export type { SocketAddress } from "./endpoint";
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
  /** The bridge executable. Default "circle-bridge" (looked up on PATH). */
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
    command: options.command ?? "circle-bridge",
    args: options.args ?? ["serve", "--stdio"],
    env: { ...process.env, ...options.env },
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    ...(options.onStderr === undefined ? {} : { onStderr: options.onStderr }),
  });
  return open(endpoint, options);
}

/** Options of `connect()`: where the bridge listens, plus the handshake options. */
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
