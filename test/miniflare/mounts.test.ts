// Mounts (features §18.1) and routing between them (§18.2), through the API:
// each mount is another worker of the same host, picked by its routes.
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";
import { MiniflareCoreError } from "../../src/plugins/core/errors.js";
import { Log, LogLevel } from "../../src/shared/log.js";
import { assertRejectsMiniflare } from "../helpers/errors.js";
import { TestLog } from "../helpers/log.js";
import { useMiniflare } from "../helpers/miniflare.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";

function respond(text: string): string {
  return `export default { fetch: (request) => new Response("${text}:" + new URL(request.url).pathname) }`;
}

async function text(mf: { dispatchFetch(url: string): Promise<any> }, url: string): Promise<string> {
  return (await mf.dispatchFetch(url)).text();
}

test("Miniflare: mounts: routes pick the worker, the parent is the fallback", async (t) => {
  const mf = useMiniflare(t, {
    log: new TestLog(),
    modules: true,
    script: respond("parent"),
    mounts: {
      api: { modules: true, script: respond("api"), routes: ["http://127.0.0.1/api*", "api.mf/*"] },
      site: { modules: true, script: respond("site"), routes: ["*.mf/*"] },
    },
  });
  // The multiple-workers docs: "Dispatches to the "api" worker"
  assert.equal(await text(mf, "http://api.mf/todos/update/1"), "api:/todos/update/1");
  assert.equal(await text(mf, "http://127.0.0.1/api/v1"), "api:/api/v1");
  // "api.mf/*" is more specific than "*.mf/*"
  assert.equal(await text(mf, "http://site.mf/"), "site:/");
  // No route matches: the parent
  assert.equal(await text(mf, "http://localhost/api"), "parent:/api");
});

test("Miniflare: mounts: a service binding naming a mount reaches that worker, whatever the URL", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: `export default {
      async fetch(request, env) {
        const res = await env.BACKEND.fetch("http://anything.example/from-parent");
        return new Response("parent got " + (await res.text()));
      }
    }`,
    serviceBindings: { BACKEND: "backend" },
    mounts: { backend: { modules: true, script: respond("backend"), routes: ["backend.mf/*"] } },
  });
  assert.equal(await text(mf, "http://localhost/"), "parent got backend:/from-parent");
});

test("Miniflare: mounts: a named parent competes with its routes", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: respond("parent"),
    name: "worker",
    routes: ["http://127.0.0.1/parent*"],
    mounts: { api: { modules: true, script: respond("api"), routes: ["http://127.0.0.1/*"] } },
  });
  assert.equal(await text(mf, "http://127.0.0.1/parent/x"), "parent:/parent/x");
  assert.equal(await text(mf, "http://127.0.0.1/other"), "api:/other");
});

test("Miniflare: mounts: a mount's upstream replaces the URL and Host after routing", async (t) => {
  // The multiple-workers docs' example
  const mf = useMiniflare(t, {
    script: "// parent",
    mounts: {
      api: {
        script: `export default {
          async fetch(request) {
            return new Response("URL: " + request.url + " Host: " + request.headers.get("Host"));
          }
        }`,
        modules: true,
        upstream: "https://example.com/api/",
        routes: ["api.mf/*"],
      },
    },
  });
  const res = await mf.dispatchFetch("http://api.mf/todos/update/1", { headers: { Host: "api.mf" } });
  assert.equal(await res.text(), "URL: https://example.com/api/todos/update/1 Host: example.com");
});

test("Miniflare: mounts: a directory mount reads its own wrangler.toml, package.json and .env", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "api/package.json": JSON.stringify({ module: "./worker.mjs" }),
    "api/wrangler.toml": `
      name = "api"
      [build.upload]
      format = "modules"
      [env.dev]
      route = "dev.mf/*"
      [vars]
      FROM = "toml"
    `,
    "api/.env": "SECRET=dotenv",
    "api/worker.mjs": `export default { fetch: (r, env) => new Response(env.FROM + "," + env.SECRET + "," + (env.KV ? "kv" : "none")) }`,
  });
  const log = new TestLog();
  const mf = useMiniflare(t, {
    log,
    script: "// parent",
    kvNamespaces: ["KV"],
    mounts: { api: path.join(tmp, "api"), dev: { rootPath: path.join(tmp, "api"), wranglerConfigPath: true, wranglerConfigEnv: "dev", packagePath: true, envPath: true, name: "dev" } },
  });
  const api = await mf.getMount("api");
  // Nothing but watch and persistence comes from the parent (no KV binding)
  assert.equal(await (await api!.dispatchFetch("http://localhost/")).text(), "toml,dotenv,none");
  // The "dev" mount reads [env.dev]: its route
  assert.equal(await text(mf, "http://dev.mf/"), "toml,dotenv,none");
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), [
    "Mounts are experimental. There may be breaking changes in the future.",
  ]);
});

test("Miniflare: mounts: errors", async (t) => {
  const cases: [options: object, code: string, message: string][] = [
    [{ "": { script: "//" } }, "ERR_MOUNT_NO_NAME", "Mount name cannot be empty"],
    [{ a: { script: "//", mounts: {} } }, "ERR_MOUNT_NESTED", "Nested mounts are unsupported"],
    [{ a: { script: "//", mounts: undefined } }, "ERR_MOUNT_NESTED", "Nested mounts are unsupported"],
    [{ a: { script: "//", name: "b" } }, "ERR_MOUNT_NAME_MISMATCH", 'Mounted name "a" must match service name "b"'],
    [{ a: { script: "throw new Error('bad')" } }, "ERR_MOUNT", 'Error mounting "a"'],
    [{ a: {} }, "ERR_MOUNT", 'Error mounting "a"'],
  ];
  for (const [mounts, code, message] of cases) {
    const mf = useMiniflare(t, { script: "//", mounts } as any);
    const error = await assertRejectsMiniflare(mf.getPlugins(), MiniflareCoreError, code, message);
    if (code === "ERR_MOUNT") assert.ok(error.cause);
  }
});

test("Miniflare: mounts: a parent with mounts needs no script", async (t) => {
  const mf = useMiniflare(t, { mounts: { a: { modules: true, script: respond("a"), routes: ["*/*"] } } });
  assert.equal(await text(mf, "http://localhost/x"), "a:/x");
});

test("Miniflare: mounts: persistence passes down, resolved against the parent's root", async (t) => {
  const tmp = await useTmp(t);
  const mf = useMiniflare(t, {
    rootPath: tmp,
    script: "//",
    kvPersist: "./kv",
    durableObjectsPersist: true,
    mounts: { a: { script: "//", rootPath: path.join(tmp, "a") } },
  });
  const { KVPlugin, DurableObjectsPlugin } = await (await mf.getMount("a"))!.getPlugins();
  assert.equal(KVPlugin.kvPersist, path.join(tmp, "kv"));
  // `true` stays `true`: the mount resolves it against its own root
  assert.equal(DurableObjectsPlugin.durableObjectsPersist, true);
});

test("Miniflare: mounts: getMount returns a handle on the mount; a removed mount is disposed", async (t) => {
  const log = new TestLog(LogLevel.DEBUG);
  const mf = useMiniflare(t, {
    log,
    script: "//",
    mounts: { a: { modules: true, script: respond("a"), bindings: { X: 1 } } },
  });
  const a = await mf.getMount("a");
  assert.ok(a);
  assert.equal(await mf.getMount("b"), undefined);
  assert.equal(await mf.getMount(""), undefined);
  assert.equal((await a.getBindings()).X, 1);
  assert.equal(typeof (await a.getModuleExports()).default.fetch, "function");
  assert.equal((await a.getPlugins()).CorePlugin.script, respond("a"));
  assert.equal(await (await a.dispatchFetch("http://localhost/p")).text(), "a:/p");
  assert.equal(await mf.getMount("a"), a);

  const scope = await a.getGlobalScope();
  let disposed = false;
  // The plugins of a removed mount are disposed
  const plugins = await a.getPlugins();
  const dispose = plugins.BindingsPlugin.dispose?.bind(plugins.BindingsPlugin);
  plugins.BindingsPlugin.dispose = async () => {
    disposed = true;
    await dispose?.();
  };
  await mf.setOptions({ mounts: {} });
  assert.equal(disposed, true);
  assert.equal(await mf.getMount("a"), undefined);
  assert.ok(scope);
  assert.ok(log.logsAtLevel(LogLevel.DEBUG).includes('Unmounting "a"...'));
});

test("Miniflare: mounts: a mount's handle sets its options and reloads, until the parent's options are set", async (t) => {
  const mounts = { a: { modules: true, script: respond("a"), routes: ["a.mf/*"], bindings: { X: "1" } } };
  const mf = useMiniflare(t, { script: "//", mounts });
  const a = (await mf.getMount("a"))!;
  // Merged over the mount's options: routes and bindings stay
  await a.setOptions({ script: respond("a2") });
  assert.equal(await text(mf, "http://a.mf/x"), "a2:/x");
  assert.equal((await a.getBindings()).X, "1");
  // A failed change leaves the mount as it was, and is forgotten
  await assert.rejects(a.setOptions({ script: "throw new Error('broken')" }), /broken/);
  assert.equal(await text(mf, "http://a.mf/y"), "a2:/y");
  let reloads = 0;
  mf.addEventListener("reload", () => reloads++);
  await a.reload();
  assert.equal(reloads, 1);
  assert.equal(await text(mf, "http://a.mf/z"), "a2:/z");
  // The parent's options win again
  await mf.setOptions({ mounts });
  assert.equal(await text(mf, "http://a.mf/z"), "a:/z");
  // A handle on a mount the parent removed can't set options
  await mf.setOptions({ mounts: {} });
  await assert.rejects(a.setOptions({ script: respond("gone") }), {
    name: "TypeError",
    message: '"a" is no longer mounted: its handle can\'t set options',
  });
});

test("Miniflare: mounts: a mount's log lines carry its name", async () => {
  const lines: string[] = [];
  const log = new Log(LogLevel.INFO);
  const original = console.log;
  console.log = (line: string) => void lines.push(line);
  const { Miniflare } = await import("../../src/miniflare.js");
  const mf = new Miniflare({ log, script: "//", mounts: { api: { script: "//" } } });
  try {
    await mf.getPlugins();
  } finally {
    console.log = original;
    await mf.dispose();
  }
  const plain = lines.map((line) => line.replace(/\x1b\[[0-9;]*m/g, ""));
  assert.ok(plain.includes("[mf:inf:api] Worker reloaded! (2B)"), plain.join("\n"));
  assert.ok(plain.includes("[mf:inf] Worker reloaded! (2B)"), plain.join("\n"));
});

test("Miniflare: mounts: a failed reload of one mount leaves every worker serving", async (t) => {
  const mounts = {
    a: { modules: true, script: respond("a"), routes: ["a.mf/*"] },
    b: { modules: true, script: respond("b"), routes: ["b.mf/*"] },
  };
  const mf = useMiniflare(t, { modules: true, script: respond("parent"), mounts });
  await assert.rejects(
    mf.setOptions({ mounts: { ...mounts, b: { ...mounts.b, script: "throw new Error('broken b')" }, c: { script: "//", routes: ["c.mf/*"] } } }),
    /broken b/
  );
  assert.equal(await text(mf, "http://a.mf/"), "a:/");
  assert.equal(await text(mf, "http://b.mf/"), "b:/");
  assert.equal(await text(mf, "http://localhost/"), "parent:/");
  // The new mount never served
  assert.equal(await mf.getMount("c"), undefined);
  assert.equal(await text(mf, "http://c.mf/"), "parent:/");
  // A good reload afterwards applies
  await mf.setOptions({ mounts: { a: mounts.a } });
  assert.equal(await text(mf, "http://b.mf/"), "parent:/");
});

test("Miniflare: mounts: Durable Objects keep answering after one mount's failed reload", async (t) => {
  const objects = `
export class Counter {
  constructor() { this.n = 0; }
  fetch() { return new Response(String(++this.n)); }
}
export default { fetch: () => new Response("objects") }`;
  const mounts = {
    objects: { modules: true, script: objects, durableObjects: { COUNTER: "Counter" } },
    front: {
      modules: true,
      routes: ["front.mf/*"],
      // Uses the class exported by another mount (script_name)
      durableObjects: { COUNTER: { className: "Counter", scriptName: "objects" } },
      script: `export default { fetch: (r, env) => env.COUNTER.get(env.COUNTER.idFromName("x")).fetch(r) }`,
    },
  };
  const mf = useMiniflare(t, { script: "//", mounts });
  assert.equal(await text(mf, "http://front.mf/"), "1");
  assert.equal(await text(mf, "http://front.mf/"), "2");
  await assert.rejects(
    mf.setOptions({ mounts: { ...mounts, objects: { ...mounts.objects, script: objects + "\nthrow new Error('broken');" } } }),
    /broken/
  );
  assert.equal(await text(mf, "http://front.mf/"), "3");
});

test("Miniflare: mounts: workers bound to one class share its instances, whose env is the defining worker's", async (t) => {
  const objects = `
export class Counter {
  constructor(state, env) { this.env = env; this.n = 0; }
  fetch() { return new Response(++this.n + " " + this.env.WHERE); }
}
export default { fetch: (r, env) => env.COUNTER.get(env.COUNTER.idFromName("x")).fetch(r) }`;
  const front = `export default { fetch: (r, env) => env.COUNTER.get(env.COUNTER.idFromName("x")).fetch(r) }`;
  const mf = useMiniflare(t, {
    script: "//",
    mounts: {
      objects: { modules: true, script: objects, routes: ["objects.mf/*"], bindings: { WHERE: "objects" }, durableObjects: { COUNTER: "Counter" } },
      front: {
        modules: true,
        script: front,
        routes: ["front.mf/*"],
        bindings: { WHERE: "front" },
        durableObjects: { COUNTER: { className: "Counter", scriptName: "objects" } },
      },
    },
  });
  assert.equal(await text(mf, "http://front.mf/"), "1 objects");
  assert.equal(await text(mf, "http://objects.mf/"), "2 objects");
  assert.equal(await text(mf, "http://front.mf/"), "3 objects");
});

test("Miniflare: mounts: dispatchScheduled routes by URL", async (t) => {
  const scheduled = (name: string) =>
    `export default { scheduled: (e, env, ctx) => ctx.waitUntil(Promise.resolve("${name}")) }`;
  const mf = useMiniflare(t, {
    modules: true,
    script: scheduled("parent"),
    mounts: { api: { modules: true, script: scheduled("api"), routes: ["api.mf/*"] } },
  });
  assert.deepEqual(await mf.dispatchScheduled(1000, "* * * * *", "http://api.mf/cdn-cgi/mf/scheduled"), ["api"]);
  assert.deepEqual(await mf.dispatchScheduled(1000, "* * * * *", "http://localhost/"), ["parent"]);
  assert.deepEqual(await mf.dispatchScheduled(1000), ["parent"]);
});

test("Miniflare: mounts: [miniflare.mounts] in wrangler.toml, relative to its folder, with @env", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "wrangler.toml": `
      [miniflare.mounts]
      api = "./api@dev"
    `,
    "worker.js": 'addEventListener("fetch", (e) => e.respondWith(new Response("parent")))',
    "api/wrangler.toml": `
      [env.dev]
      routes = ["api.mf/*"]
    `,
    "api/worker.js": 'addEventListener("fetch", (e) => e.respondWith(new Response("api")))',
    "api/package.json": JSON.stringify({ main: "./worker.js" }),
  });
  await fs.mkdir(path.join(tmp, "elsewhere"));
  const mf = useMiniflare(t, { rootPath: tmp, scriptPath: "worker.js", wranglerConfigPath: true });
  assert.equal(await text(mf, "http://api.mf/"), "api");
  assert.equal(await text(mf, "http://localhost/"), "parent");
});
