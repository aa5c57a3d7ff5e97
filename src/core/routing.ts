// Which worker a request goes to when the host has mounts: the Router (pure:
// route patterns to names) plus the workers those names stand for.
import type { Log } from "../shared/log.js";
import { PARENT, checkMountName } from "./mounts.js";
import { Router } from "./router.js";
import type { Worker } from "./worker.js";

export class Routing<W> {
  readonly #router: Router;
  /** Router targets (mount names, and the parent's name) to workers */
  readonly #targets: ReadonlyMap<string, W>;

  constructor(router: Router, targets: ReadonlyMap<string, W>) {
    this.#router = router;
    this.#targets = targets;
  }

  /** The worker whose route matches `url` most specifically, if any */
  match(url: string | URL): W | undefined {
    const target = this.#router.match(typeof url === "string" ? new URL(url) : url);
    return target === null ? undefined : this.#targets.get(target);
  }
}

/**
 * Checks the mounts' names and builds the routing for the workers `next`
 * (the parent under PARENT); undefined without mounts, so plain dispatch
 * never matches a route
 */
export function buildRouting<W extends Worker<any>>(
  parent: W,
  next: ReadonlyMap<string, W>,
  log: Log
): Routing<W> | undefined {
  const allRoutes = new Map<string, readonly string[]>();
  const targets = new Map<string, W>();
  const parentCore = parent.plugins.CorePlugin;
  if (parentCore.name !== undefined && parentCore.routes) allRoutes.set(parentCore.name, parentCore.routes);
  for (const [name, worker] of next) {
    if (name === PARENT) continue;
    checkMountName(name, worker);
    const routes = worker.plugins.CorePlugin.routes;
    if (routes) allRoutes.set(name, routes);
    targets.set(name, worker);
  }
  if (next.size === 1) return undefined;
  // A match on the parent's own name is the parent
  if (parentCore.name !== undefined) targets.set(parentCore.name, parent);
  const router = new Router();
  router.update(allRoutes);
  log.debug(`Mount Routes:${router.routes.length === 0 ? " <none>" : ""}`);
  router.routes.forEach((route, i) => log.debug(`${i + 1}. ${route.route} => ${route.target}`));
  return new Routing(router, targets);
}
