// A throwaway redis-server for tests: started on a free local port with no
// persistence, stopped by the test file that started it.
import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** The redis-server executable on PATH, if there is one */
export function findRedisServer(): string | undefined {
  const names = process.platform === "win32" ? ["redis-server.exe"] : ["redis-server"];
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir === "") continue;
    for (const name of names) {
      const file = path.join(dir, name);
      try {
        fs.accessSync(file, fs.constants.X_OK);
        if (fs.statSync(file).isFile()) return file;
      } catch {
        // Not here
      }
    }
  }
  return undefined;
}

export interface RedisServer {
  port: number;
  /** redis://127.0.0.1:<port> */
  url: string;
  stop(): Promise<void>;
}

/** A port nothing is listening on right now */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Whether something on `port` answers PING with PONG */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    let reply = "";
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on("error", () => done(false));
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (data) => {
      reply += data.toString();
      if (reply.includes("\r\n")) done(reply.startsWith("+PONG"));
    });
  });
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** Starts redis-server on a free port, resolving once it answers PING */
export async function startRedisServer(): Promise<RedisServer> {
  const executable = findRedisServer();
  // Without it the Redis tests fail rather than skip: .ci/run installs it
  if (executable === undefined) throw new Error("redis-server not found on PATH: apt-get install redis-server (.ci/run does)");
  // Another process may take the port between freePort() and the spawn: retry
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const child = spawn(
      executable,
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
      { stdio: ["ignore", "ignore", "pipe"] }
    );
    let stderr = "";
    child.stderr!.on("data", (data) => (stderr += data));
    let spawnError: Error | undefined;
    child.on("error", (error) => (spawnError = error));

    const deadline = Date.now() + 10_000;
    let ready = false;
    while (Date.now() < deadline) {
      if (spawnError !== undefined || child.exitCode !== null) break;
      if (await ping(port)) {
        ready = true;
        break;
      }
      await sleep(20);
    }
    if (ready) {
      return {
        port,
        url: `redis://127.0.0.1:${port}`,
        async stop() {
          const exit = exited(child);
          child.kill("SIGTERM");
          // Unreferenced, so a quick exit doesn't leave the process waiting on it
          const timeout = sleep(5000, "timeout" as const, { ref: false });
          if ((await Promise.race([exit, timeout])) === "timeout") {
            child.kill("SIGKILL");
            await exit;
          }
        },
      };
    }
    child.kill("SIGKILL");
    await exited(child);
    if (attempt >= 2) {
      throw new Error(`redis-server did not start: ${spawnError?.message ?? stderr}`);
    }
  }
}
