// The `miniflare` command with several workers: --mount, --name and --route
import assert from "node:assert/strict";
import http from "node:http";
import { test } from "node:test";
import { runBin, waitForOutput } from "../helpers/process.js";
import { seedMountsTree } from "../helpers/seeds.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";

const LISTENING = /Listening on 127\.0\.0\.1:(\d+)/;

/** GETs `path` from the server on `port` with the Host header `host` */
function get(port: number, path: string, host?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const headers = host === undefined ? {} : { Host: host };
    http
      .get({ host: "127.0.0.1", port, path, headers, agent: false }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => (text += chunk));
        res.on("end", () => resolve(text));
      })
      .on("error", reject);
  });
}

const answering = (text: string) =>
  `export default { fetch: (request, env) => new Response(${JSON.stringify(text)} + " " + (env.WHERE ?? "-") + " " + new URL(request.url).pathname) }`;

async function project(t: Parameters<typeof useTmp>[0]): Promise<string> {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.mjs": answering("parent"),
    "api/wrangler.toml": `
      name = "api"
      route = "api.mf/*"
      [build.upload]
      format = "modules"
      main = "./worker.mjs"
      [vars]
      WHERE = "top"
      [env.dev]
      route = "api.mf/*"
      [env.dev.vars]
      WHERE = "dev"
    `,
    "api/dist/worker.mjs": answering("api"),
  });
  return tmp;
}

test("CLI: --mount serves a mounted worker on its routes, the Host header choosing it, the parent otherwise", async (t) => {
  const tmp = await project(t);
  const run = runBin(t, ["worker.mjs", "--modules", "--mount", "api=./api", "--port", "0", "--no-update-check"], tmp);
  const [, port] = await waitForOutput(run, LISTENING);
  assert.equal(await get(Number(port), "/todos/1", "api.mf"), "api top /todos/1");
  assert.equal(await get(Number(port), "/todos/1"), "parent - /todos/1");
  // The mount's lines carry its name
  assert.match(run.stdout(), /^\[mf:inf:api\] Worker reloaded! \(\d+B\)$/m);
  assert.match(run.stdout(), /^\[mf:inf\] Worker reloaded! \(\d+B\)$/m);
});

test("CLI: --mount NAME=PATH@ENV applies the mount's wrangler.toml environment", async (t) => {
  const tmp = await project(t);
  const run = runBin(t, ["worker.mjs", "--modules", "--mount", "api=./api@dev", "--port", "0", "--no-update-check"], tmp);
  const [, port] = await waitForOutput(run, LISTENING);
  assert.equal(await get(Number(port), "/x", "api.mf"), "api dev /x");
});

test("CLI: --name and --route make the parent compete with its mounts", async (t) => {
  const tmp = await project(t);
  const args = ["worker.mjs", "--modules", "--mount", "api=./api", "--name", "parent", "--route", "api.mf/parent*"];
  const run = runBin(t, [...args, "--port", "0", "--no-update-check"], tmp);
  const [, port] = await waitForOutput(run, LISTENING);
  // Same host: the longer path wins, so /parent* goes to the parent and the rest to api
  assert.equal(await get(Number(port), "/parent/1", "api.mf"), "parent - /parent/1");
  assert.equal(await get(Number(port), "/other", "api.mf"), "api top /other");
});

test("CLI: --service binds a mounted worker, --do NAME=CLASS@MOUNT an object class it exports", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "worker.mjs": `export default { async fetch(request, env) {
      const id = env.COUNTER.idFromName("one");
      const count = await (await env.COUNTER.get(id).fetch("http://do/")).text();
      const api = await (await env.API.fetch("http://api/hello")).text();
      return new Response(api + " count=" + count);
    } }`,
    "api/wrangler.toml": `
      name = "api"
      [build.upload]
      format = "modules"
      main = "./worker.mjs"
    `,
    "api/dist/worker.mjs": `
      export class Counter {
        constructor(state) { this.storage = state.storage; }
        async fetch() {
          const count = ((await this.storage.get("count")) ?? 0) + 1;
          await this.storage.put("count", count);
          return new Response(String(count));
        }
      }
      export default { fetch: (request) => new Response("api saw " + new URL(request.url).pathname) };
    `,
  });
  const args = ["worker.mjs", "--modules", "--mount", "api=./api", "--service", "API=api", "--do", "COUNTER=Counter@api"];
  const run = runBin(t, [...args, "--port", "0", "--no-update-check"], tmp);
  const [, port] = await waitForOutput(run, LISTENING);
  assert.equal(await get(Number(port), "/"), "api saw /hello count=1");
  assert.equal(await get(Number(port), "/"), "api saw /hello count=2");
});

test("CLI: the seed's `miniflare --mount api=./api --mount site=./site@dev`", async (t) => {
  const tmp = await seedMountsTree(t);
  const run = runBin(t, ["--mount", "api=./api", "--mount", "site=./site@dev", "--port", "0", "--no-update-check"], tmp);
  const [, port] = await waitForOutput(run, LISTENING);
  // The seed's `curl "http://localhost:8787/todos/update/1" -H "Host: api.mf"`
  assert.equal(await get(Number(port), "/todos/update/1", "api.mf"), "api /todos/update/1");
  assert.equal(await get(Number(port), "/", "site.mf"), "site dev /");
  assert.equal(await get(Number(port), "/"), "parent");
});
