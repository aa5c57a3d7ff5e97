// The headers timeout, counted from when the headers started, whatever the
// client sends meanwhile. Node's own check starts again each time a header
// line completes, so a client sending one line every few seconds was never
// closed (reliability check 32): this closes it with a 408.
import http from "node:http";
import https from "node:https";
import type { Duplex } from "node:stream";

function bytesRead(socket: Duplex): number | undefined {
  return (socket as Duplex & { bytesRead?: number }).bytesRead;
}

const TIMEOUT_RESPONSE = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

/**
 * Closes every connection of `server` whose request headers haven't all
 * arrived `timeout()` ms after it opened. After a response, the next
 * request may start as late as the keep-alive timeout (Node closes an idle
 * connection then), so its headers have both timeouts: a 408 never lands on
 * an idle connection a client may be reusing. `timeout()` is read each
 * time, so it follows reloads; 0 turns the deadline off.
 */
export function enforceHeadersDeadline(server: http.Server | https.Server, timeout: () => number): void {
  const deadlines = new WeakMap<Duplex, NodeJS.Timeout>();
  const arm = (socket: Duplex, after = 0): void => {
    clearTimeout(deadlines.get(socket));
    const headers = timeout();
    if (!(headers > 0) || socket.destroyed) return;
    const ms = after + headers;
    const readBefore = bytesRead(socket);
    const timer = setTimeout(() => {
      if (socket.destroyed) return;
      // A connection that sent nothing (a browser's spare one, say) is
      // closed without a word, as Node closes idle ones: an unasked-for 408
      // could be taken for the answer to a request just being sent
      if (bytesRead(socket) === readBefore) socket.destroy();
      else socket.end(TIMEOUT_RESPONSE, () => socket.destroy());
    }, ms);
    // (a connection alone never keeps the process alive)
    timer.unref();
    deadlines.set(socket, timer);
  };
  const disarm = (socket: Duplex): void => clearTimeout(deadlines.get(socket));
  // A TLS request's socket is the TLS one, which "secureConnection" gives
  const connectionEvent = server instanceof https.Server ? "secureConnection" : "connection";
  server.on(connectionEvent, (socket: Duplex) => {
    arm(socket);
    socket.once("close", () => disarm(socket));
  });
  server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const socket = req.socket;
    disarm(socket);
    // (without a keep-alive timeout, idle connections are left to the client)
    res.once("finish", () => {
      if (server.keepAliveTimeout > 0) arm(socket, server.keepAliveTimeout);
    });
  });
  server.on("upgrade", (req: http.IncomingMessage) => disarm(req.socket));
}
