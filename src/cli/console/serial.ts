/**
 * Where `boxvm run --serial` sends the guest's first serial port:
 *   stdio          the terminal (TerminalConsole), the default
 *   file:<path>    guest output written to a file (no input)
 *   tcp:<port>     a TCP server on 127.0.0.1 (port 0: any free port); the first client that connects
 *                  is the console (output is kept until then, up to 1 MiB); later ones wait
 *   none           nowhere
 */
import { createWriteStream, type WriteStream } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import type { GuestConsole } from "./terminal.ts";

/** A parsed --serial value. */
export type SerialSpec = { kind: "stdio" } | { kind: "none" } | { kind: "file"; path: string } | { kind: "tcp"; port: number };

/** Parses --serial; Error with the accepted forms. */
export function parseSerialSpec(s: string): SerialSpec {
  if (s === "stdio" || s === "mon:stdio") return { kind: "stdio" };
  if (s === "none" || s === "null") return { kind: "none" };
  if (s.startsWith("file:") && s.length > 5) return { kind: "file", path: s.slice(5) };
  const m = /^tcp:(?:(?:127\.0\.0\.1|localhost)?:)?(\d{1,5})(?:,server(?:=on)?)?(?:,(?:no)?wait(?:=(?:on|off))?)?$/.exec(s);
  if (m) {
    const port = Number(m[1]);
    if (port <= 65535) return { kind: "tcp", port };
  }
  throw new Error(`Bad --serial ${JSON.stringify(s)}: use stdio, file:<path>, tcp:<port> (on 127.0.0.1) or none`);
}

/** A connected serial backend. */
export interface SerialAttachment {
  /** What to print about it ("serial0 on tcp 127.0.0.1:4555"). */
  description: string;
  close(): Promise<void>;
}

/** Guest output to a file. */
export function attachFile(guest: GuestConsole, path: string): Promise<SerialAttachment> {
  return new Promise((resolve, reject) => {
    const ws: WriteStream = createWriteStream(path, { flags: "w" });
    ws.once("error", reject);
    ws.once("open", () => {
      const off = guest.onData((b) => ws.write(b));
      resolve({
        description: `serial0 output to ${path}`,
        close: () =>
          new Promise<void>((done) => {
            off();
            ws.end(() => done());
          }),
      });
    });
  });
}

/** Most guest output kept while no TCP client is connected. */
export const TCP_BACKLOG_BYTES = 1 << 20;

/** A TCP server on 127.0.0.1 whose client is the serial console. */
export function attachTcp(guest: GuestConsole, port: number): Promise<SerialAttachment & { port: number }> {
  return new Promise((resolve, reject) => {
    let client: Socket | null = null;
    let backlog: Uint8Array[] = [];
    let backlogBytes = 0;
    const off = guest.onData((b) => {
      if (client) {
        client.write(b);
        return;
      }
      backlog.push(b);
      backlogBytes += b.length;
      while (backlogBytes > TCP_BACKLOG_BYTES && backlog.length > 1) backlogBytes -= backlog.shift()!.length;
    });
    const server: Server = createServer((sock) => {
      if (client) {
        sock.end("boxvm: the serial console is in use by another client\r\n");
        return;
      }
      client = sock;
      sock.setNoDelay(true);
      for (const b of backlog) sock.write(b);
      backlog = [];
      backlogBytes = 0;
      sock.on("data", (d: Buffer) => guest.write(new Uint8Array(d)));
      sock.on("error", () => undefined);
      sock.on("close", () => {
        if (client === sock) client = null;
      });
    });
    server.once("error", (e) => {
      off();
      reject(e);
    });
    server.listen(port, "127.0.0.1", () => {
      const addr = server.address();
      const actual = typeof addr === "object" && addr ? addr.port : port;
      resolve({
        port: actual,
        description: `serial0 on tcp 127.0.0.1:${String(actual)} (connect with: nc 127.0.0.1 ${String(actual)})`,
        close: () =>
          new Promise<void>((done) => {
            off();
            client?.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}
