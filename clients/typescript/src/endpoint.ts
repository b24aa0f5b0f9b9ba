import * as childProcess from "node:child_process";
import * as net from "node:net";

import { type MessageReader, type MessageWriter, StreamMessageReader, StreamMessageWriter } from "vscode-jsonrpc/node";

/**
 * One end of a byte stream that speaks LSP-framed JSON-RPC to a bridge: a child process's stdio
 * or a socket. The client above it knows nothing of which.
 */
export interface Endpoint {
  readonly reader: MessageReader;
  readonly writer: MessageWriter;
  /**
   * Settles once the peer is gone and all its output was read: the child's exit code, or `null`
   * for a socket or a child killed by a signal. Never rejects.
   */
  readonly ended: Promise<number | null>;
  /** Stop sending: close the child's stdin, or half-close the socket. */
  end(): void;
  /** Tear it down now: kill the child, destroy the socket. */
  destroy(): void;
  /** What this is and, once it failed, why: for error messages. */
  describe(): string;
}

export interface ProcessEndpointOptions {
  command: string;
  args: readonly string[];
  env: NodeJS.ProcessEnv;
  cwd?: string;
  onStderr?: (text: string) => void;
}

const STDERR_TAIL_CHARS = 4000;
const KILL_GRACE_MS = 2000;

/** Start the bridge as a child process and talk to it over its stdin and stdout. */
export function processEndpoint(options: ProcessEndpointOptions): Endpoint {
  const child = childProcess.spawn(options.command, [...options.args], {
    env: options.env,
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    stdio: ["pipe", "pipe", "pipe"],
    windowsHide: true,
  });
  let stderrTail = "";
  let failure: Error | undefined;
  let exit: string | undefined;

  // Always drain stderr: a full pipe would block the bridge's logging, and with it the bridge.
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (text: string) => {
    stderrTail = (stderrTail + text).slice(-STDERR_TAIL_CHARS);
    options.onStderr?.(text);
  });
  const ended = new Promise<number | null>((resolve) => {
    // "close" comes after "exit" and after stdout/stderr were fully read, so no reply is lost.
    child.once("close", (code, signal) => {
      exit = signal === null ? `exited with code ${String(code)}` : `was killed by ${signal}`;
      resolve(code);
    });
  });
  // A failed spawn (ENOENT, EACCES) emits "error", then "close"; a failed kill emits "error" only.
  child.on("error", (error) => {
    failure ??= error;
  });
  // EPIPE when the bridge is gone: the writer reports it to the pending request, not as a crash.
  child.stdin.on("error", () => {});

  return {
    reader: new StreamMessageReader(child.stdout),
    writer: new StreamMessageWriter(child.stdin),
    ended,
    end: () => {
      child.stdin.end();
    },
    destroy: () => {
      if (child.exitCode !== null || child.signalCode !== null) {
        return;
      }
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), KILL_GRACE_MS);
      void ended.then(() => clearTimeout(timer));
    },
    describe: () => {
      const parts = [`\`${[options.command, ...options.args].join(" ")}\``];
      if (failure !== undefined) {
        parts.push(`could not be started: ${failure.message}`);
      } else if (exit !== undefined) {
        parts.push(exit);
      }
      const tail = stderrTail.trim();
      return tail ? `${parts.join(" ")}; its stderr ended with:\n${tail}` : parts.join(" ");
    },
  };
}

export type SocketAddress = { path: string } | { host?: string; port: number };

/** Connect to a bridge listening on a Unix socket (`path`) or TCP (`host`, `port`). */
export async function socketEndpoint(address: SocketAddress): Promise<Endpoint> {
  const where = "path" in address ? address.path : `${address.host ?? "127.0.0.1"}:${address.port}`;
  const socket =
    "path" in address ? net.connect({ path: address.path }) : net.connect({ host: address.host ?? "127.0.0.1", port: address.port });
  let failure: Error | undefined;
  const ended = new Promise<number | null>((resolve) => {
    socket.once("close", () => resolve(null));
  });
  socket.on("error", (error) => {
    failure ??= error;
  });
  await new Promise<void>((resolve, reject) => {
    const onConnect = (): void => {
      socket.off("close", onClose);
      resolve();
    };
    const onClose = (): void => {
      socket.off("connect", onConnect);
      reject(new Error(`could not connect to circle-bridge at ${where}: ${failure?.message ?? "closed"}`));
    };
    socket.once("connect", onConnect);
    socket.once("close", onClose);
  });
  return {
    reader: new StreamMessageReader(socket),
    writer: new StreamMessageWriter(socket),
    ended,
    end: () => {
      socket.end();
    },
    destroy: () => {
      socket.destroy();
    },
    describe: () => `circle-bridge at ${where}` + (failure === undefined ? " closed the connection" : `: ${failure.message}`),
  };
}
