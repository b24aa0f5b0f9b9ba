import { ConnectionError, ResponseError } from "vscode-jsonrpc/node";

import { ErrorCatalogue, type ErrorName } from "./protocol";

/**
 * Client-side failures that never came from the bridge as an error reply. The codes are the
 * ones vscode-jsonrpc uses for the same conditions, so they stay outside the catalogue's range.
 */
export const ClientErrorCodes = {
  /** The bridge process or socket went away (or never came up) before the answer arrived. */
  ConnectionClosed: -32097,
} as const;

export type ClientErrorName = keyof typeof ClientErrorCodes;

/** Which name a `CircleBridgeError` carries: a catalogue name, a client-side name, or `UnknownError`. */
export type CircleBridgeErrorName = ErrorName | ClientErrorName | "UnknownError";

// vscode-jsonrpc's own codes for a broken stream: MessageWriteError, MessageReadError,
// PendingResponseRejected, ConnectionInactive.
const CONNECTION_CODES: ReadonlySet<number> = new Set([-32099, -32098, -32097, -32096]);

const NAMES_BY_CODE: ReadonlyMap<number, ErrorName> = new Map(
  (Object.keys(ErrorCatalogue) as ErrorName[]).map((name) => [ErrorCatalogue[name].code, name]),
);

/** The name that goes with an error code (see `CircleBridgeErrorName`). */
export function errorName(code: number): CircleBridgeErrorName {
  const name = NAMES_BY_CODE.get(code);
  if (name !== undefined) {
    return name;
  }
  return CONNECTION_CODES.has(code) ? "ConnectionClosed" : "UnknownError";
}

/**
 * Every failure of a bridge call rejects with this.
 *
 * `code` is the JSON-RPC error code the bridge replied with (see `ErrorCodes`), or
 * `ClientErrorCodes.ConnectionClosed` when the bridge went away. `name` is the catalogue name for
 * the code, e.g. `CircleOperationFailed` for -33004. `data` is the reply's `data` member as sent,
 * e.g. `{ retryable: false, operation: "enumTopics", upstreamMessage: "Circle not found" }`.
 */
export class CircleBridgeError extends Error {
  override readonly name: CircleBridgeErrorName;
  readonly code: number;
  readonly data?: unknown;
  /** The method whose call failed, when known. */
  readonly method?: string;

  constructor(code: number, message: string, options: { data?: unknown; method?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = errorName(code);
    this.code = code;
    if (options.data !== undefined) {
      this.data = options.data;
    }
    if (options.method !== undefined) {
      this.method = options.method;
    }
  }

  /**
   * Whether retrying the same call can help: `data.retryable` when the bridge sent it, else the
   * catalogue's hint for the code, else `false`.
   */
  get retryable(): boolean {
    const data = this.data;
    if (typeof data === "object" && data !== null && "retryable" in data && typeof data.retryable === "boolean") {
      return data.retryable;
    }
    const name = NAMES_BY_CODE.get(this.code);
    return name === undefined ? false : ErrorCatalogue[name].retryable;
  }
}

/**
 * Turn what vscode-jsonrpc threw into a `CircleBridgeError`: an error reply keeps its code and
 * data; a closed or broken connection becomes `ConnectionClosed`. Anything else (a bug, not a
 * bridge condition) is returned unchanged.
 */
export function toCircleBridgeError(error: unknown, method?: string): unknown {
  if (error instanceof CircleBridgeError) {
    return error;
  }
  const where = method === undefined ? {} : { method };
  if (error instanceof ResponseError) {
    return new CircleBridgeError(error.code, error.message, { ...where, data: error.data, cause: error });
  }
  if (error instanceof ConnectionError) {
    return new CircleBridgeError(ClientErrorCodes.ConnectionClosed, error.message, { ...where, cause: error });
  }
  return error;
}
