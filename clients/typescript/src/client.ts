import { CancellationToken, createMessageConnection, type Disposable, type MessageConnection } from "vscode-jsonrpc/node";

import type { Endpoint } from "./endpoint";
import { CircleBridgeError, ClientErrorCodes, toCircleBridgeError } from "./errors";
import {
  type CircleMethods,
  type InitializeParams,
  type InitializeResult,
  NOTIFICATION_METHODS,
  type NotificationMethod,
  type Notifications,
  type OpenRpcDocument,
  REQUEST_METHODS,
  type RequestMethod,
  type Requests,
  type ServerCapabilities,
  type ServerInfo,
  SERVER_NOTIFICATION_METHODS,
  type ServerNotificationMethod,
  type ServerNotifications,
} from "./protocol";

/** Options of the `initialize` handshake and of `close()`, for `spawn()` and `connect()`. */
export interface HandshakeOptions {
  /** Sent as `clientInfo.name`; the bridge logs it. Default "circle-bridge-client". */
  clientName?: string;
  /** Sent as `clientInfo.version`. */
  clientVersion?: string;
  /** Sent as `initializationOptions` in the `initialize` params. */
  initializationOptions?: Record<string, unknown>;
  /**
   * The daemon's TCP auth token (`authToken` in daemon.json), sent as
   * `initializationOptions.authToken`. A daemon's TCP listener closes the connection without it.
   * `attach({ transport: "tcp" })` reads it for you.
   */
  authToken?: string;
  /** How long to wait for the `initialize` reply before giving up. Default 30 000 ms. */
  startTimeoutMs?: number;
  /** How long `close()` waits at each step before killing the bridge. Default 5 000 ms. */
  closeTimeoutMs?: number;
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
 * `$/cancelRequest`. A call the bridge had not answered yet then rejects with RequestCancelled
 * (-32800); one whose reply was already on its way resolves as usual.
 *
 * It is a `Disposable` (VS Code's `context.subscriptions.push(client)` works) and an
 * `AsyncDisposable` (`await using client = await spawn()`): both run `close()`.
 */
export class CircleBridgeClient {
  /** The bridge's `serverInfo` from the `initialize` reply (`name` is "circle-bridge"). */
  readonly serverInfo: ServerInfo;
  readonly capabilities: ServerCapabilities;
  readonly protocolVersion: string;
  /** One typed wrapper per `circle/*` method, generated from the protocol (see `CircleMethods`). */
  readonly circle: CircleMethods;
  /**
   * Settles when the bridge is gone, for whatever reason: its exit code when it was a child
   * process, `null` for a socket or a child killed by a signal.
   */
  readonly closed: Promise<number | null>;

  readonly #connection: MessageConnection;
  readonly #endpoint: Endpoint;
  readonly #closeTimeoutMs: number;
  readonly #listeners: Map<ServerNotificationMethod, Set<(params: never) => void>>;
  #ended = false;
  #closing: Promise<number | null> | undefined;

  /** Use `spawn()` or `connect()`; this runs no handshake. */
  constructor(
    connection: MessageConnection,
    endpoint: Endpoint,
    initialized: InitializeResult,
    closeTimeoutMs: number,
    listeners: Map<ServerNotificationMethod, Set<(params: never) => void>> = listenersOf(connection),
  ) {
    this.#connection = connection;
    this.#listeners = listeners;
    this.#endpoint = endpoint;
    this.#closeTimeoutMs = closeTimeoutMs;
    this.serverInfo = initialized.serverInfo;
    this.capabilities = initialized.capabilities;
    this.protocolVersion = initialized.protocolVersion;
    this.closed = endpoint.ended;
    void endpoint.ended.then(() => {
      this.#ended = true;
    });
    this.circle = this.#namespace("circle/") as unknown as CircleMethods;
  }

  /**
   * The wrappers of one namespace, built from the generated method lists so a method added to
   * the protocol needs no hand-written code. A wrapper without params takes only the token;
   * `CancellationToken.is` tells the two call shapes apart (an empty params object is no token).
   */
  #namespace(prefix: string): Record<string, (...args: unknown[]) => Promise<unknown>> {
    const wrappers: Record<string, (...args: unknown[]) => Promise<unknown>> = {};
    for (const method of REQUEST_METHODS.filter((name) => name.startsWith(prefix))) {
      wrappers[method.slice(prefix.length)] = (first, second) =>
        CancellationToken.is(first)
          ? this.request(method, {} as never, first)
          : this.request(method, (first ?? {}) as never, second as CancellationToken | undefined);
    }
    for (const method of NOTIFICATION_METHODS.filter((name) => name.startsWith(prefix))) {
      wrappers[method.slice(prefix.length)] = async (params) => {
        try {
          await this.#connection.sendNotification(method, params ?? {});
        } catch (error) {
          throw toCircleBridgeError(error, method);
        }
      };
    }
    return wrappers;
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

  /**
   * Call `handler` for every `method` notification the bridge sends: `$/progress` (for requests
   * that carried a `workDoneToken`, e.g. `circle.createCircle`) and `circle/tokenNeeded` (with
   * `CIRCLE_TOKEN_SOURCE=client`: answer with `circle.initialize({ token })`). Returns a
   * `Disposable` that unsubscribes. A handler that throws is logged by vscode-jsonrpc and does not
   * stop the others.
   */
  onNotification<M extends ServerNotificationMethod>(method: M, handler: (params: ServerNotifications[M]) => void): Disposable {
    const handlers = this.#listeners.get(method);
    if (handlers === undefined) {
      throw new TypeError(`${method} is not a notification the bridge sends (${SERVER_NOTIFICATION_METHODS.join(", ")})`);
    }
    const entry = handler as (params: never) => void;
    handlers.add(entry);
    return { dispose: () => void handlers.delete(entry) };
  }

  /**
   * Send a client-to-server notification, e.g.
   * `notify("window/workDoneProgress/cancel", { token })` to cancel a request by its progress token.
   */
  async notify<M extends NotificationMethod>(method: M, params: Notifications[M]["params"]): Promise<void> {
    try {
      await this.#connection.sendNotification(method, params);
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

  /**
   * Start `close()` without waiting for it, for owners that dispose synchronously (VS Code's
   * `Disposable`, as vscode-jsonrpc's `MessageConnection.dispose()`). Await `closed` to know when
   * the bridge is gone.
   */
  dispose(): void {
    void this.close();
  }

  /** `await using client = await spawn()`: `close()` runs when the block is left. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
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
  const listeners = listenersOf(connection); // before listen(): nothing the bridge sends is missed
  // The stream is over once the peer is gone: reject what is still pending instead of hanging.
  void endpoint.ended.then(() => connection.dispose());
  connection.listen();
  const params: InitializeParams = {
    processId: process.pid,
    clientInfo: {
      name: options.clientName ?? "circle-bridge-client",
      ...(options.clientVersion === undefined ? {} : { version: options.clientVersion }),
    },
  };
  if (options.initializationOptions !== undefined || options.authToken !== undefined) {
    params["initializationOptions"] = {
      ...options.initializationOptions,
      ...(options.authToken === undefined ? {} : { authToken: options.authToken }),
    };
  }
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
  return new CircleBridgeClient(connection, endpoint, result, options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS, listeners);
}

/**
 * One vscode-jsonrpc handler per server notification, fanning out to the subscribed handlers.
 * It replaces vscode-jsonrpc's own `$/progress` routing (`onProgress`), which this client does
 * not expose: `onNotification("$/progress")` sees every token.
 */
function listenersOf(connection: MessageConnection): Map<ServerNotificationMethod, Set<(params: never) => void>> {
  const listeners = new Map<ServerNotificationMethod, Set<(params: never) => void>>();
  for (const method of SERVER_NOTIFICATION_METHODS) {
    const handlers = new Set<(params: never) => void>();
    listeners.set(method, handlers);
    connection.onNotification(method, (params: unknown) => {
      for (const handler of [...handlers]) {
        handler(params as never);
      }
    });
  }
  return listeners;
}
