import assert from "node:assert/strict";
import { IN_REQUEST_MESSAGE } from "../helpers/http.js";
import { test } from "node:test";
import { setImmediate as setImmediateCallback } from "node:timers";
import { setImmediate, setTimeout } from "node:timers/promises";
import {
  EXTERNAL_SUBREQUEST_LIMIT_BUNDLED,
  EXTERNAL_SUBREQUEST_LIMIT_UNBOUND,
  INTERNAL_SUBREQUEST_LIMIT,
  RequestContext,
  assertInRequest,
  getRequestContext,
  usageModelExternalSubrequestLimit,
} from "../../src/shared/context.js";

const ENV_KEYS = [
  "MINIFLARE_SUBREQUEST_LIMIT",
  "MINIFLARE_INTERNAL_SUBREQUEST_LIMIT",
] as const;
type EnvKey = (typeof ENV_KEYS)[number];

/**
 * Runs `closure` with the subrequest limit environment variables set to
 * `env` (unset if absent), restoring the previous values afterwards.
 */
function withEnv<T>(env: Partial<Record<EnvKey, string>>, closure: () => T): T {
  const previous = ENV_KEYS.map((key) => [key, process.env[key]] as const);
  for (const key of ENV_KEYS) {
    if (env[key] === undefined) delete process.env[key];
    else process.env[key] = env[key];
  }
  try {
    return closure();
  } finally {
    for (const [key, value] of previous) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
}

const DEPTH_PREFIX =
  "Subrequest depth limit exceeded. This request recursed through Workers " +
  "too many times. This can happen e.g. if you have a Worker or Durable " +
  "Object that calls other Workers or objects recursively.";
const REQUEST_DEPTH_MESSAGE =
  DEPTH_PREFIX +
  "\nWorkers and objects can recurse up to 16 times." +
  "\nIf you're trying to fetch from an origin server, make sure you've set the `upstream` option.";
const PIPELINE_DEPTH_MESSAGE =
  DEPTH_PREFIX + "\nService bindings can recurse up to 32 times.";

function externalMessage(limit: number): string {
  return (
    `Too many subrequests. Workers can make up to ${limit} subrequests per request.` +
    "\nA subrequest is a call to fetch(), a redirect, or a call to any Cache API method."
  );
}
function internalMessage(limit: number): string {
  return (
    `Too many API requests by single worker invocation. Workers can make up ` +
    `to ${limit} KV and Durable Object requests per invocation.`
  );
}


test("RequestContext: constructor: defaults", () => {
  withEnv({}, () => {
    const ctx = new RequestContext();
    assert.equal(ctx.requestDepth, 1);
    assert.equal(ctx.pipelineDepth, 1);
    assert.equal(ctx.durableObject, false);
    assert.equal(ctx.externalSubrequestLimit, 50);
    assert.equal(ctx.internalSubrequestLimit, 1000);
    assert.equal(ctx.externalSubrequests, 0);
    assert.equal(ctx.internalSubrequests, 0);
  });
  const ctx = new RequestContext({
    requestDepth: 3,
    pipelineDepth: 4,
    durableObject: true,
  });
  assert.equal(ctx.requestDepth, 3);
  assert.equal(ctx.pipelineDepth, 4);
  assert.equal(ctx.durableObject, true);
});

test("RequestContext: constructor: allows request depth up to 16", () => {
  assert.equal(new RequestContext({ requestDepth: 16 }).requestDepth, 16);
  assert.throws(() => new RequestContext({ requestDepth: 17 }), {
    name: "Error",
    message: REQUEST_DEPTH_MESSAGE,
  });
  assert.throws(() => new RequestContext({ requestDepth: 100 }), {
    message: REQUEST_DEPTH_MESSAGE,
  });
});

test("RequestContext: constructor: allows pipeline depth up to 32", () => {
  assert.equal(new RequestContext({ pipelineDepth: 32 }).pipelineDepth, 32);
  assert.throws(() => new RequestContext({ pipelineDepth: 33 }), {
    name: "Error",
    message: PIPELINE_DEPTH_MESSAGE,
  });
  // Request depth is checked first
  assert.throws(
    () => new RequestContext({ requestDepth: 17, pipelineDepth: 33 }),
    { message: REQUEST_DEPTH_MESSAGE }
  );
});

test("RequestContext: usageModelExternalSubrequestLimit: 50 bundled, 1000 unbound", () => {
  assert.equal(EXTERNAL_SUBREQUEST_LIMIT_BUNDLED, 50);
  assert.equal(EXTERNAL_SUBREQUEST_LIMIT_UNBOUND, 1000);
  assert.equal(INTERNAL_SUBREQUEST_LIMIT, 1000);
  assert.equal(usageModelExternalSubrequestLimit(), 50);
  assert.equal(usageModelExternalSubrequestLimit("bundled"), 50);
  assert.equal(usageModelExternalSubrequestLimit("unbound"), 1000);
});

test("RequestContext: incrementExternalSubrequests: allows 50 subrequests when bundled", () => {
  withEnv({}, () => {
    const ctx = new RequestContext({
      externalSubrequestLimit: usageModelExternalSubrequestLimit("bundled"),
    });
    for (let i = 0; i < 50; i++) ctx.incrementExternalSubrequests();
    assert.equal(ctx.externalSubrequests, 50);
    assert.throws(() => ctx.incrementExternalSubrequests(), {
      name: "Error",
      message: externalMessage(50),
    });
    // Internal subrequests are counted separately
    assert.equal(ctx.internalSubrequests, 0);
    ctx.incrementInternalSubrequests();
    assert.equal(ctx.internalSubrequests, 1);
  });
});

test("RequestContext: incrementExternalSubrequests: allows 1000 subrequests when unbound", () => {
  withEnv({}, () => {
    const ctx = new RequestContext({
      externalSubrequestLimit: usageModelExternalSubrequestLimit("unbound"),
    });
    ctx.incrementExternalSubrequests(999);
    ctx.incrementExternalSubrequests();
    assert.equal(ctx.externalSubrequests, 1000);
    assert.throws(() => ctx.incrementExternalSubrequests(), {
      message: externalMessage(1000),
    });
  });
});

test("RequestContext: incrementExternalSubrequests: counts several at once", () => {
  withEnv({}, () => {
    const ctx = new RequestContext();
    ctx.incrementExternalSubrequests(49);
    assert.equal(ctx.externalSubrequests, 49);
    assert.throws(() => ctx.incrementExternalSubrequests(2), {
      message: externalMessage(50),
    });
  });
});

test("RequestContext: incrementExternalSubrequests: uses a custom limit", () => {
  withEnv({}, () => {
    const ctx = new RequestContext({ externalSubrequestLimit: 2 });
    ctx.incrementExternalSubrequests();
    ctx.incrementExternalSubrequests();
    assert.throws(() => ctx.incrementExternalSubrequests(), {
      message: externalMessage(2),
    });
    const unlimited = new RequestContext({ externalSubrequestLimit: false });
    unlimited.incrementExternalSubrequests(5000);
    assert.equal(unlimited.externalSubrequests, 5000);
  });
});

test("RequestContext: incrementInternalSubrequests: allows 1000 internal subrequests", () => {
  withEnv({}, () => {
    const ctx = new RequestContext();
    for (let i = 0; i < 1000; i++) ctx.incrementInternalSubrequests();
    assert.equal(ctx.internalSubrequests, 1000);
    assert.throws(() => ctx.incrementInternalSubrequests(), {
      name: "Error",
      message: internalMessage(1000),
    });
    assert.equal(ctx.externalSubrequests, 0);
    const custom = new RequestContext({ internalSubrequestLimit: 3 });
    custom.incrementInternalSubrequests(3);
    assert.throws(() => custom.incrementInternalSubrequests(), {
      message: internalMessage(3),
    });
  });
});

test("RequestContext: MINIFLARE_SUBREQUEST_LIMIT: overrides the external limit", () => {
  withEnv({ MINIFLARE_SUBREQUEST_LIMIT: "3" }, () => {
    // Overrides both the default and an explicit limit
    for (const ctx of [
      new RequestContext(),
      new RequestContext({ externalSubrequestLimit: 1000 }),
    ]) {
      assert.equal(ctx.externalSubrequestLimit, 3);
      ctx.incrementExternalSubrequests(3);
      assert.throws(() => ctx.incrementExternalSubrequests(), {
        message: externalMessage(3),
      });
      // The internal limit is unaffected
      assert.equal(ctx.internalSubrequestLimit, 1000);
    }
  });
});

test("RequestContext: MINIFLARE_SUBREQUEST_LIMIT: negative means unlimited", () => {
  withEnv({ MINIFLARE_SUBREQUEST_LIMIT: "-1" }, () => {
    const ctx = new RequestContext();
    assert.equal(ctx.externalSubrequestLimit, false);
    ctx.incrementExternalSubrequests(100_000);
    assert.equal(ctx.externalSubrequests, 100_000);
  });
});

test("RequestContext: MINIFLARE_SUBREQUEST_LIMIT: 0 allows no subrequests", () => {
  withEnv({ MINIFLARE_SUBREQUEST_LIMIT: "0" }, () => {
    const ctx = new RequestContext();
    assert.equal(ctx.externalSubrequestLimit, 0);
    assert.throws(() => ctx.incrementExternalSubrequests(), {
      message: externalMessage(0),
    });
  });
});

test("RequestContext: MINIFLARE_SUBREQUEST_LIMIT: ignored unless numeric", () => {
  withEnv({ MINIFLARE_SUBREQUEST_LIMIT: "lots" }, () => {
    assert.equal(new RequestContext().externalSubrequestLimit, 50);
  });
  withEnv({ MINIFLARE_SUBREQUEST_LIMIT: "" }, () => {
    assert.equal(new RequestContext().externalSubrequestLimit, 50);
  });
});

test("RequestContext: MINIFLARE_INTERNAL_SUBREQUEST_LIMIT: overrides the internal limit", () => {
  withEnv({ MINIFLARE_INTERNAL_SUBREQUEST_LIMIT: "2" }, () => {
    const ctx = new RequestContext({ internalSubrequestLimit: 1000 });
    assert.equal(ctx.internalSubrequestLimit, 2);
    ctx.incrementInternalSubrequests(2);
    assert.throws(() => ctx.incrementInternalSubrequests(), {
      message: internalMessage(2),
    });
    assert.equal(ctx.externalSubrequestLimit, 50);
  });
  withEnv({ MINIFLARE_INTERNAL_SUBREQUEST_LIMIT: "-5" }, () => {
    const ctx = new RequestContext();
    assert.equal(ctx.internalSubrequestLimit, false);
    ctx.incrementInternalSubrequests(100_000);
    assert.equal(ctx.internalSubrequests, 100_000);
  });
  withEnv({ MINIFLARE_INTERNAL_SUBREQUEST_LIMIT: "0" }, () => {
    const ctx = new RequestContext();
    assert.throws(() => ctx.incrementInternalSubrequests(), {
      message: internalMessage(0),
    });
  });
});

test("RequestContext: getRequestContext: undefined outside a request", () => {
  assert.equal(getRequestContext(), undefined);
});

test("RequestContext: runWith: returns the closure's result", async () => {
  const ctx = new RequestContext();
  assert.equal(
    ctx.runWith(() => 42),
    42
  );
  assert.equal(await ctx.runWith(async () => "async"), "async");
  assert.throws(
    () =>
      ctx.runWith(() => {
        throw new RangeError("thrown");
      }),
    RangeError
  );
  assert.equal(getRequestContext(), undefined);
});

test("RequestContext: getRequestContext: available across awaits and timers inside runWith", async () => {
  const ctx = new RequestContext();
  const seen: (RequestContext | undefined)[] = [];
  await ctx.runWith(async () => {
    seen.push(getRequestContext());
    await Promise.resolve();
    seen.push(getRequestContext());
    await setImmediate();
    seen.push(getRequestContext());
    await setTimeout(1);
    seen.push(getRequestContext());
    await new Promise<void>((resolve) =>
      setImmediateCallback(() => {
        seen.push(getRequestContext());
        resolve();
      })
    );
    await new Promise<void>((resolve) =>
      globalThis.setTimeout(() => {
        seen.push(getRequestContext());
        resolve();
      }, 1)
    );
  });
  assert.equal(seen.length, 6);
  for (const value of seen) assert.equal(value, ctx);
  assert.equal(getRequestContext(), undefined);
});

test("RequestContext: getRequestContext: concurrent and nested contexts stay separate", async () => {
  const ctx1 = new RequestContext();
  const ctx2 = new RequestContext({ requestDepth: 2 });
  const inner = new RequestContext({ requestDepth: 3 });
  const events: string[] = [];
  const run = (ctx: RequestContext, name: string) =>
    ctx.runWith(async () => {
      for (let i = 0; i < 3; i++) {
        await setImmediate();
        assert.equal(getRequestContext(), ctx);
        events.push(name);
      }
      await inner.runWith(async () => {
        await setImmediate();
        assert.equal(getRequestContext(), inner);
      });
      // Back to the outer context after the nested one finishes
      assert.equal(getRequestContext(), ctx);
    });
  await Promise.all([run(ctx1, "1"), run(ctx2, "2")]);
  // The two requests really were interleaved
  assert.deepEqual(events, ["1", "2", "1", "2", "1", "2"]);
});

test("RequestContext: assertInRequest: throws outside a request", async () => {
  assert.throws(() => assertInRequest(), {
    name: "Error",
    message: IN_REQUEST_MESSAGE,
  });
  const ctx = new RequestContext();
  await ctx.runWith(async () => {
    assertInRequest();
    await setImmediate();
    assertInRequest();
  });
  assert.throws(() => assertInRequest(), { message: IN_REQUEST_MESSAGE });
});

test("RequestContext: currentTime: frozen until advanceCurrentTime()", async () => {
  const before = Date.now();
  const ctx = new RequestContext();
  const after = Date.now();
  const start = ctx.currentTime;
  assert.ok(before <= start && start <= after);

  await ctx.runWith(async () => {
    // Wait (without assuming any duration) until real time has moved on
    while (Date.now() <= start) await setTimeout(1);
    await setImmediate();
    assert.equal(ctx.currentTime, start);

    const beforeAdvance = Date.now();
    ctx.advanceCurrentTime();
    const afterAdvance = Date.now();
    assert.ok(ctx.currentTime > start);
    assert.ok(beforeAdvance <= ctx.currentTime);
    assert.ok(ctx.currentTime <= afterAdvance);

    const advanced = ctx.currentTime;
    while (Date.now() <= advanced) await setTimeout(1);
    assert.equal(ctx.currentTime, advanced);
  });
});
