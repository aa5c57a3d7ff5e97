// A reload whose script fails to load leaves the previous version serving,
// whole: its global scope, its plugins and its Durable Objects.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Miniflare } from "../../src/miniflare.js";
import { useMiniflare } from "../helpers/miniflare.js";
import { within } from "../helpers/sync.js";

// Bounds a request that, before the fix, never answered
const ANSWER_WITHIN = 5_000; /* ms */

function objectScript(version: string): string {
  return `
export class Obj {
  constructor() {
    this.instance = crypto.randomUUID();
    this.requests = 0;
  }
  fetch() {
    return Response.json({ version: "${version}", instance: this.instance, requests: ++this.requests });
  }
}
export default {
  fetch(request, env) {
    const name = new URL(request.url).pathname.substring(1);
    return env.OBJ.get(env.OBJ.idFromName(name)).fetch(request);
  }
}`;
}

const BROKEN_SCRIPT = `throw new Error("broken at load");`;

async function json(mf: Miniflare, url: string): Promise<any> {
  const res = await within(mf.dispatchFetch(url), `request to ${url}`, ANSWER_WITHIN);
  return within(res.json(), `body of ${url}`, ANSWER_WITHIN);
}

test("Miniflare: failed reload: Durable Objects keep answering, from the same instances", async (t) => {
  const mf = useMiniflare(t, { script: objectScript("v1"), durableObjects: { OBJ: "Obj" } });
  const first = await json(mf, "http://localhost/a");
  assert.deepEqual([first.version, first.requests], ["v1", 1]);

  await assert.rejects(mf.setOptions({ script: BROKEN_SCRIPT }), /broken at load/);
  // The previous version still serves, objects included
  const second = await json(mf, "http://localhost/a");
  assert.equal(second.version, "v1");
  assert.equal(second.instance, first.instance);
  assert.equal(second.requests, 2);
  // An object not yet constructed is constructed from the previous classes
  assert.equal((await json(mf, "http://localhost/b")).version, "v1");
});

test("Miniflare: failed reload: host stubs of Durable Objects keep answering", async (t) => {
  const mf = useMiniflare(t, { script: objectScript("v1"), durableObjects: { OBJ: "Obj" } });
  const ns = await mf.getDurableObjectNamespace("OBJ");
  const stub = ns.get(ns.idFromName("a"));
  const first = await (await stub.fetch("http://localhost/")).json();

  await assert.rejects(mf.setOptions({ script: BROKEN_SCRIPT }), /broken at load/);
  const res = await within(stub.fetch("http://localhost/"), "stub request", ANSWER_WITHIN);
  const second: any = await res.json();
  assert.equal(second.instance, first.instance);
  assert.equal(second.requests, 2);
});

test("Miniflare: failed reload: twice in a row, then a good one commits with fresh objects", async (t) => {
  const mf = useMiniflare(t, { script: objectScript("v1"), durableObjects: { OBJ: "Obj" } });
  const first = await json(mf, "http://localhost/a");
  await assert.rejects(mf.setOptions({ script: BROKEN_SCRIPT }), /broken at load/);
  await assert.rejects(mf.reload(), /broken at load/);
  assert.equal((await json(mf, "http://localhost/a")).instance, first.instance);

  await mf.setOptions({ script: objectScript("v2") });
  const next = await json(mf, "http://localhost/a");
  assert.equal(next.version, "v2");
  assert.notEqual(next.instance, first.instance);
  assert.equal(next.requests, 1);
});

test("Miniflare: failed reload: the worker's own handler keeps answering", async (t) => {
  const mf = useMiniflare(t, {
    modules: true,
    script: `export default { fetch: () => new Response("v1") }`,
  });
  assert.equal(await (await mf.dispatchFetch("http://localhost/")).text(), "v1");
  await assert.rejects(mf.setOptions({ script: BROKEN_SCRIPT }), /broken at load/);
  const res = await within(mf.dispatchFetch("http://localhost/"), "request", ANSWER_WITHIN);
  assert.equal(await res.text(), "v1");
});
