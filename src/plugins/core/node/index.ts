/**
 * Node.js built-in modules importable/requirable by workers when the
 * `nodejs_compat` compatibility flag is on. Each entry is a plain
 * object of the module's named exports plus `default`; the module linker
 * turns it into a module.
 */
import type { Context } from "../../../shared/runner.js";
import { assertModule } from "./assert.js";
import { asyncHooksModule } from "./async-hooks.js";
import { bufferModule } from "./buffer.js";
import { eventsModule } from "./events.js";
import { utilModule } from "./util.js";

export type NodeModuleName =
  | "node:assert"
  | "node:async_hooks"
  | "node:buffer"
  | "node:events"
  | "node:util";

/**
 * Returns the `nodejs_compat` modules. `experimental` (the `experimental`
 * flag) currently adds nothing, as in Miniflare 2.
 */
export function additionalNodeModules(
  _experimental: boolean
): Record<NodeModuleName, Context> {
  return {
    "node:assert": assertModule,
    "node:async_hooks": asyncHooksModule,
    "node:buffer": bufferModule,
    "node:events": eventsModule,
    "node:util": utilModule,
  };
}
