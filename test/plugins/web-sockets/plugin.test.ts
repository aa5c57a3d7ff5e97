import assert from "node:assert/strict";
import { once } from "node:events";
import { test, type TestContext } from "node:test";
import { parseArgv } from "../../../src/cli/args.js";
import { getPluginEntries, splitPluginOptions, splitWranglerConfig } from "../../../src/core/options.js";
import { PLUGINS } from "../../../src/plugins.js";
import { WebSocketPlugin } from "../../../src/plugins/web-sockets/index.js";
import { Compatibility } from "../../../src/shared/compat.js";
import { LogLevel } from "../../../src/shared/log.js";
import { logOptions, type PluginContext } from "../../../src/shared/plugin.js";
import { CloseEvent, MessageEvent, WebSocket, WebSocketPair } from "../../../src/standards/websocket.js";
import { TestLog } from "../../helpers/log.js";
import { useMiniflare } from "../../helpers/miniflare.js";
import { useEchoServer, watchProcess } from "../../helpers/websocket.js";
import { HostRegistry } from "../../../src/shared/registry.js";

function pluginContext(extra: Partial<PluginContext> = {}): PluginContext {
  return { log: new TestLog(), compat: new Compatibility(), rootPath: "/project", registry: new HostRegistry(), ...extra };
}

const entries = getPluginEntries({ WebSocketPlugin });

// A modules worker that opens a WebSocket to env.TARGET with fetch, and keeps it
// open, answering with what it got back for a first message
const FETCHING_WORKER = `
export default {
  async fetch(request, env) {
    const res = await fetch(env.TARGET, { headers: { Upgrade: "websocket" } });
    const ws = res.webSocket;
    const url = new URL(request.url);
    if (url.searchParams.has("unaccepted")) return new Response(String(res.status));
    ws.accept();
    const echoed = new Promise((resolve) => ws.addEventListener("message", (e) => resolve(e.data), { once: true }));
    ws.send("from worker");
    return new Response(res.status + " " + (await echoed));
  },
};
`;

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

test("WebSocketPlugin: declares no options", () => {
  assert.equal(WebSocketPlugin.prototype.opts, undefined);
});

test("WebSocketPlugin: parses options from the command line", () => {
  // Nothing to parse: no flag belongs to it
  assert.deepEqual(parseArgv(PLUGINS, ["worker.js"]), { scriptPath: "worker.js" });
});

test("WebSocketPlugin: parses options from wrangler config", () => {
  const config = { name: "worker", miniflare: { kv_persist: true } };
  assert.deepEqual(
    splitWranglerConfig(entries, splitPluginOptions(entries, {}), config, "/project", new TestLog()).WebSocketPlugin,
    {}
  );
});

test("WebSocketPlugin: logs options", () => {
  const log = new TestLog(LogLevel.DEBUG);
  logOptions(entries, log, { WebSocketPlugin: {} });
  assert.deepEqual(log.logsAtLevel(LogLevel.DEBUG), ["Options:"]);
});

test("WebSocketPlugin: comes after DurableObjectsPlugin, just before BindingsPlugin", () => {
  const names = Object.keys(PLUGINS);
  const index = names.indexOf("WebSocketPlugin");
  assert(index > names.indexOf("DurableObjectsPlugin"));
  assert.equal(names[index + 1], "BindingsPlugin");
  assert.equal(PLUGINS.WebSocketPlugin, WebSocketPlugin);
});

// ---------------------------------------------------------------------------
// Globals
// ---------------------------------------------------------------------------

test("WebSocketPlugin: setup provides WebSocketPair, WebSocket, MessageEvent, CloseEvent and an upgrading fetch", () => {
  const plugin = new WebSocketPlugin(pluginContext());
  const globals = plugin.setup().globals!;
  assert.deepEqual(Object.keys(globals).sort(), ["CloseEvent", "MessageEvent", "WebSocket", "WebSocketPair", "fetch"]);
  assert.equal(globals.WebSocketPair, WebSocketPair);
  assert.equal(globals.WebSocket, WebSocket);
  assert.equal(globals.MessageEvent, MessageEvent);
  assert.equal(globals.CloseEvent, CloseEvent);
  assert.equal(typeof globals.fetch, "function");
});

test("WebSocketPlugin: workers get the globals, and pairs work inside a worker", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: `export default {
      async fetch() {
        let noNew;
        try { WebSocketPair(); } catch (e) { noNew = e instanceof TypeError && e.message; }
        const [a, b] = Object.values(new WebSocketPair());
        a.accept();
        b.accept();
        const got = new Promise((resolve) => b.addEventListener("message", (e) => resolve(e.data)));
        a.send("inside");
        return Response.json({
          noNew,
          isWebSocket: a instanceof WebSocket,
          events: [typeof MessageEvent, typeof CloseEvent],
          got: await got,
        });
      },
    }`,
  });
  const res = await mf.dispatchFetch("http://localhost/");
  assert.deepEqual(await res.json(), {
    noNew:
      "Failed to construct 'WebSocketPair': Please use the 'new' operator, this object constructor cannot be called as a function.",
    isWebSocket: true,
    events: ["function", "function"],
    got: "inside",
  });
});

test("WebSocketPlugin: a worker can return a pair's end in a 101 response", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: `export default {
      fetch() {
        const [client, server] = Object.values(new WebSocketPair());
        server.accept();
        return new Response(null, { status: 101, webSocket: client });
      },
    }`,
  });
  const res = await mf.dispatchFetch("http://localhost/");
  assert.equal(res.status, 101);
  assert(res.webSocket instanceof WebSocket);
});

// ---------------------------------------------------------------------------
// The upgrading fetch
// ---------------------------------------------------------------------------

/** An echo server, and an instance whose worker (FETCHING_WORKER) opens a socket to it */
async function useFetchingWorker(t: TestContext) {
  const server = await useEchoServer(t);
  const mf = useMiniflare(t, {
    modules: true,
    bindings: { TARGET: `http://127.0.0.1:${server.port}/` },
    script: FETCHING_WORKER,
  });
  return { server, mf };
}

test("WebSocketPlugin: a worker's fetch upgrades, and its socket talks to the server", async (t) => {
  const { mf } = await useFetchingWorker(t);
  const res = await mf.dispatchFetch("http://localhost/");
  assert.equal(await res.text(), "101 echo:from worker");
});

test("WebSocketPlugin: fetch to a ws:// URL follows the fetch_refuses_unknown_protocols flag", async (t) => {
  const server = await useEchoServer(t);
  const script = `export default {
    async fetch(request, env) {
      try {
        const res = await fetch(env.TARGET, { headers: { Upgrade: "websocket" } });
        res.webSocket.accept();
        res.webSocket.close();
        return new Response(String(res.status));
      } catch (e) {
        return new Response(e.message);
      }
    },
  }`;
  const url = `ws://127.0.0.1:${server.port}/`;
  const refusing = useMiniflare(t, { modules: true, compatibilityDate: "2022-01-01", bindings: { TARGET: url }, script });
  assert.equal(await (await refusing.dispatchFetch("http://localhost/")).text(), `Fetch API cannot load: ${url}`);

  // Before the flag: a warning, then the URL is treated as http:
  const log = new TestLog();
  const lenient = useMiniflare(t, { log, modules: true, bindings: { TARGET: url }, script });
  assert.equal(await (await lenient.dispatchFetch("http://localhost/")).text(), "101");
  assert.match(log.logsAtLevel(LogLevel.WARN).join("\n"), /Worker passed an invalid URL to fetch\(\)/);
});

test("WebSocketPlugin: a reload whose script fails leaves fetched sockets open; the next good one closes them", async (t) => {
  const { server, mf } = await useFetchingWorker(t);
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "101 echo:from worker");
  const plugin = (await mf.getPlugins()).WebSocketPlugin;
  assert.equal(plugin.webSocketCount, 1);

  await assert.rejects(mf.setOptions({ script: 'throw new Error("broken at load")' }), /broken at load/);
  // The previous version still serves: its sockets stay open
  assert.equal(plugin.webSocketCount, 1);

  const closed = server.connections.map((ws) => once(ws, "close"));
  await mf.setOptions({ script: FETCHING_WORKER });
  for (const [code] of await Promise.all(closed)) assert.equal(code, 1012);
  assert.equal(plugin.webSocketCount, 0);
});

test("WebSocketPlugin: reload closes fetched sockets with 1012 Service Restart", async (t) => {
  const escaped = watchProcess(t);
  const { server, mf } = await useFetchingWorker(t);
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "101 echo:from worker");
  // Also one the worker never accepted
  assert.equal(await (await mf.dispatchFetch("http://localhost/?unaccepted")).text(), "101");
  const plugin = (await mf.getPlugins()).WebSocketPlugin;
  assert.equal(plugin.webSocketCount, 2);

  const closed = server.connections.map((ws) => once(ws, "close"));
  await mf.reload();
  for (const [code, reason] of await Promise.all(closed)) {
    assert.equal(code, 1012);
    assert.equal(reason.toString(), "Service Restart");
  }
  assert.equal(plugin.webSocketCount, 0);
  assert.deepEqual(escaped, []);
});

test("WebSocketPlugin: dispose closes fetched sockets with 1012 Service Restart", async (t) => {
  const { server, mf } = await useFetchingWorker(t);
  await (await mf.dispatchFetch("http://localhost/")).text();
  const closed = once(server.connections[0], "close");
  await mf.dispose();
  const [code, reason] = await closed;
  assert.equal(code, 1012);
  assert.equal(reason.toString(), "Service Restart");
});

test("WebSocketPlugin: message listeners share the handler's request context in a normal worker", async (t) => {
  const server = await useEchoServer(t);
  // Each fetch in a listener counts against the request that added it
  const mf = useMiniflare(t, {
    modules: true,
    bindings: { TARGET: `http://127.0.0.1:${server.port}/` },
    script: `export default {
      async fetch(request, env) {
        const res = await fetch(env.TARGET, { headers: { Upgrade: "websocket" } });
        const ws = res.webSocket;
        ws.accept();
        const result = new Promise((resolve) => {
          ws.addEventListener("message", async () => {
            try {
              // The upgrade was the 1st subrequest of 1 allowed
              await fetch(env.TARGET, { headers: { Upgrade: "websocket" } });
              resolve("allowed");
            } catch (e) {
              resolve(e.message.split("\\n")[0]);
            }
          });
        });
        ws.send("go");
        return new Response(await result);
      },
    }`,
  });
  const previous = process.env.MINIFLARE_SUBREQUEST_LIMIT;
  process.env.MINIFLARE_SUBREQUEST_LIMIT = "1";
  t.after(() => {
    if (previous === undefined) delete process.env.MINIFLARE_SUBREQUEST_LIMIT;
    else process.env.MINIFLARE_SUBREQUEST_LIMIT = previous;
  });
  const res = await mf.dispatchFetch("http://localhost/");
  assert.equal(await res.text(), "Too many subrequests. Workers can make up to 1 subrequests per request.");
});
