import { type CancellationToken, createMessageConnection, type MessageConnection } from "vscode-jsonrpc/node";

import type { Endpoint } from "./endpoint";
import { CircleBridgeError, ClientErrorCodes, toCircleBridgeError } from "./errors";
import type {
  CircleInitializeResult,
  EnumCirclesResult,
  EnumTopicsParams,
  EnumTopicsResult,
  InitializeParams,
  InitializeResult,
  IsServiceRunningResult,
  OpenRpcDocument,
  RequestMethod,
  Requests,
  ServerCapabilities,
  ServerInfo,
} from "./protocol";

/** Options of the `initialize` handshake and of `close()`, for `spawn()` and `connect()`. */
export interface HandshakeOptions {
  /** Sent as `clientInfo.name`; the bridge logs it. Default "circle-bridge-client". */
  clientName?: string;
  /** Sent as `clientInfo.version`. */
  clientVersion?: string;
  /** Sent as `initializationOptions` in the `initialize` params. */
  initializationOptions?: unknown;
  /** How long to wait for the `initialize` reply before giving up. Default 30 000 ms. */
  startTimeoutMs?: number;
  /** How long `close()` waits at each step before killing the bridge. Default 5 000 ms. */
  closeTimeoutMs?: number;
}

/** The `circle/*` methods, one per protocol method, named after it. */
export interface CircleMethods {
  /** `circle/isServiceRunning`: is the local CircleService reachable? Never fails for a dead service. */
  isServiceRunning(token?: CancellationToken): Promise<IsServiceRunningResult>;
  /**
   * `circle/initialize`: get a token and authorize with CircleService. Optional (other calls
   * authorize on demand); the place to surface credential errors early.
   * Rejects with ServiceNotRunning, TokenRequestFailed, AuthorizationRejected, UpstreamMalformed,
   * UpstreamTimeout or BadConfiguration.
   */
  initialize(token?: CancellationToken): Promise<CircleInitializeResult>;
  /**
   * `circle/enumCircles`: the circles this user belongs to; fields beyond `circleId` are passed
   * on as CircleService sent them. Rejects like `initialize`, and with CircleOperationFailed.
   */
  enumCircles(token?: CancellationToken): Promise<EnumCirclesResult>;
  /**
   * `circle/enumTopics`: the topics of one circle. An unknown circle rejects with
   * CircleOperationFailed (-33004) and CircleService's message in `data.upstreamMessage`.
   */
  enumTopics(params: EnumTopicsParams, token?: CancellationToken): Promise<EnumTopicsResult>;
}

const DEFAULT_START_TIMEOUT_MS = 30_000;
const DEFAULT_CLOSE_TIMEOUT_MS = 5_000;
const TIMED_OUT = Symbol("timed out");

async function within<T>(promise: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A connection to circle-bridge after a completed `initialize` handshake. Get one from `spawn()`
 * or `connect()`; end it with `close()`.
 *
 * Every call rejects with a `CircleBridgeError` when the bridge answers with an error or goes away.
 * Each takes an optional `CancellationToken` (vscode-jsonrpc's, or VS Code's): cancelling it sends
 * `$/cancelRequest`, and the call then rejects with RequestCancelled (-32800).
 */
export class CircleBridgeClient {
  /** The bridge's `serverInfo` from the `initialize` reply (`name` is "circle-bridge"). */
  readonly serverInfo: ServerInfo;
  readonly capabilities: ServerCapabilities;
  readonly protocolVersion: string;
  readonly circle: CircleMethods;
  /**
   * Settles when the bridge is gone, for whatever reason: its exit code when it was a child
   * process, `null` for a socket or a child killed by a signal.
   */
  readonly closed: Promise<number | null>;

  readonly #connection: MessageConnection;
  readonly #endpoint: Endpoint;
  readonly #closeTimeoutMs: number;
  #ended = false;
  #closing: Promise<number | null> | undefined;

  /** Use `spawn()` or `connect()`; this runs no handshake. */
  constructor(connection: MessageConnection, endpoint: Endpoint, initialized: InitializeResult, closeTimeoutMs: number) {
    this.#connection = connection;
    this.#endpoint = endpoint;
    this.#closeTimeoutMs = closeTimeoutMs;
    this.serverInfo = initialized.serverInfo;
    this.capabilities = initialized.capabilities;
    this.protocolVersion = initialized.protocolVersion;
    this.closed = endpoint.ended;
    void endpoint.ended.then(() => {
      this.#ended = true;
    });
    this.circle = {
      isServiceRunning: (token) => this.request("circle/isServiceRunning", {}, token),
      initialize: (token) => this.request("circle/initialize", {}, token),
      enumCircles: (token) => this.request("circle/enumCircles", {}, token),
      enumTopics: (params, token) => this.request("circle/enumTopics", params, token),
    };
  }

  /** Call any request method of the protocol by name; the typed wrappers are built on this. */
  async request<M extends RequestMethod>(
    method: M,
    params: Requests[M]["params"],
    token?: CancellationToken,
  ): Promise<Requests[M]["result"]> {
    try {
      return token === undefined
        ? await this.#connection.sendRequest<Requests[M]["result"]>(method, params)
        : await this.#connection.sendRequest<Requests[M]["result"]>(method, params, token);
    } catch (error) {
      throw toCircleBridgeError(error, method);
    }
  }

  /** `rpc.discover`: the bridge's OpenRPC document (the same as protocol/circle-bridge.openrpc.json). */
  discover(token?: CancellationToken): Promise<OpenRpcDocument> {
    return this.request("rpc.discover", {}, token);
  }

  /**
   * End the session the polite way: `shutdown`, then `exit`, then wait for the bridge to go.
   * A bridge that does not go within `closeTimeoutMs` is killed. Resolves with the child's exit
   * code (0 after a clean shutdown), or `null` for a socket; never rejects. Calling it again
   * returns the same promise.
   */
  close(): Promise<number | null> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<number | null> {
    if (!this.#ended) {
      try {
        await within(this.#connection.sendRequest("shutdown", {}), this.#closeTimeoutMs);
        await this.#connection.sendNotification("exit", {});
      } catch {
        // Already gone, or answered shutdown with an error: ending the stream is all that is left.
      }
      this.#endpoint.end();
    }
    let code = await within(this.#endpoint.ended, this.#closeTimeoutMs);
    if (code === TIMED_OUT) {
      this.#endpoint.destroy();
      code = await this.#endpoint.ended;
    }
    this.#connection.dispose();
    return code;
  }
}

/**
 * Run the `initialize` handshake and the `initialized` notification on a fresh endpoint. On any
 * failure the endpoint is torn down and the promise rejects with a `CircleBridgeError`.
 */
export async function open(endpoint: Endpoint, options: HandshakeOptions): Promise<CircleBridgeClient> {
  const connection = createMessageConnection(endpoint.reader, endpoint.writer);
  // The stream is over once the peer is gone: reject what is still pending instead of hanging.
  void endpoint.ended.then(() => connection.dispose());
  connection.listen();
  const params: InitializeParams = {
    processId: process.pid,
    clientInfo: {
      name: options.clientName ?? "circle-bridge-client",
      ...(options.clientVersion === undefined ? {} : { version: options.clientVersion }),
    },
    ...(options.initializationOptions === undefined ? {} : { initializationOptions: options.initializationOptions }),
  };
  const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  let result: InitializeResult | typeof TIMED_OUT;
  try {
    result = await within(connection.sendRequest<InitializeResult>("initialize", params), startTimeoutMs);
    if (result !== TIMED_OUT) {
      await connection.sendNotification("initialized", {});
    }
  } catch (error) {
    const mapped = toCircleBridgeError(error, "initialize");
    endpoint.destroy();
    if (mapped instanceof CircleBridgeError && mapped.name !== "ConnectionClosed") {
      throw mapped; // the bridge answered initialize with an error reply
    }
    // Wait (bounded) for the exit status so the message can say why the bridge went away.
    await within(endpoint.ended, DEFAULT_CLOSE_TIMEOUT_MS);
    throw new CircleBridgeError(ClientErrorCodes.ConnectionClosed, `circle-bridge handshake failed: ${endpoint.describe()}`, {
      method: "initialize",
      cause: error,
    });
  }
  if (result === TIMED_OUT) {
    endpoint.destroy();
    throw new CircleBridgeError(
      ClientErrorCodes.ConnectionClosed,
      `circle-bridge did not answer initialize within ${startTimeoutMs} ms and was stopped: ${endpoint.describe()}`,
      { method: "initialize" },
    );
  }
  return new CircleBridgeClient(connection, endpoint, result, options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS);
}
