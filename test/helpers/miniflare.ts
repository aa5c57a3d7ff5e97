import type { TestContext } from "node:test";
import { Miniflare, type MiniflareOptions } from "../../src/miniflare.js";
import type { TestClock } from "./clock.js";
import { TestLog } from "./log.js";

/**
 * A Miniflare instance disposed after the test; its alarms fire by `clock`
 * if given (real time otherwise)
 */
export function useMiniflare(
  t: TestContext,
  options: MiniflareOptions,
  clock?: TestClock
): Miniflare {
  const mf = new Miniflare(options, clock);
  t.after(() => mf.dispose());
  return mf;
}

/** A modules worker whose fetch handler is `handler` (source text) */
export function useMiniflareWithHandler(
  t: TestContext,
  handler: string,
  options: MiniflareOptions = {}
): { mf: Miniflare; log: TestLog } {
  const log = new TestLog();
  const mf = useMiniflare(t, {
    log,
    modules: true,
    script: `export default { async fetch(request, env, ctx) { ${handler} } }`,
    ...options,
  });
  return { mf, log };
}
