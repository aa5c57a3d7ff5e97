// The `workers` option (a later Miniflare's form of several workers at one
// level) as this core's parent and mounts.
import { MiniflareCoreError } from "../plugins/core/errors.js";
import type { Context } from "../shared/runner.js";

function isOptionsObject(value: unknown): value is Context {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The `workers` option as the parent and its mounts: the first worker's
 * options go over the top-level ones (which hold what the workers share:
 * host, port, persistence), and every other worker becomes a mount under its
 * name, inheriting persistence and watching as mounts do. Options without
 * `workers` are returned as they are.
 */
export function expandWorkersOption(options: Context): Context {
  const { workers, ...shared } = options;
  if (workers === undefined) return options;
  if (!Array.isArray(workers) || workers.length === 0 || !workers.every(isOptionsObject)) {
    throw new MiniflareCoreError(
      "ERR_WORKERS_INVALID",
      'The "workers" option must be a non-empty array of worker options'
    );
  }
  if (shared.mounts !== undefined) {
    throw new MiniflareCoreError(
      "ERR_WORKERS_AND_MOUNTS",
      'The "workers" and "mounts" options can\'t be used together: list every worker in "workers"'
    );
  }
  const [first, ...rest] = workers as Context[];
  const mounts: Record<string, Context> = {};
  const names = new Set<string>(typeof first.name === "string" ? [first.name] : []);
  rest.forEach((worker, i) => {
    const name = worker.name;
    if (typeof name !== "string" || name === "") {
      throw new MiniflareCoreError(
        "ERR_WORKER_NO_NAME",
        `Worker ${i + 1} in "workers" has no name: every worker but the first needs one, so routes and service bindings can reach it`
      );
    }
    if (names.has(name)) {
      throw new MiniflareCoreError("ERR_WORKER_NAME_DUPLICATE", `Multiple workers in "workers" are named "${name}"`);
    }
    names.add(name);
    mounts[name] = worker;
  });
  return { ...shared, ...first, ...(rest.length > 0 ? { mounts } : {}) };
}
