import { BindingsPlugin } from "./plugins/bindings/plugin.js";
import { BuildPlugin } from "./plugins/build/plugin.js";
import { CachePlugin } from "./plugins/cache/plugin.js";
import { CorePlugin } from "./plugins/core/plugin.js";
import { HTTPPlugin } from "./http-server/plugin.js";
import { HTMLRewriterPlugin } from "./plugins/html-rewriter/plugin.js";
import { KVPlugin } from "./plugins/kv/plugin.js";
import { DurableObjectsPlugin } from "./plugins/durable-objects/plugin.js";
import { SchedulerPlugin } from "./plugins/scheduler/plugin.js";
import { SitesPlugin } from "./plugins/sites/plugin.js";
import { WebSocketPlugin } from "./plugins/web-sockets/plugin.js";

// Order matters: plugins' globals and bindings are merged in this order, so
// later ones win. CorePlugin is always first and BindingsPlugin always last
// (the engine enforces it too), so user-defined globals and bindings win over
// everything. Later plugins (HTTP, KV, Durable Objects, ...) slot in between,
// in Miniflare 2's order.
export const PLUGINS = {
  CorePlugin,
  HTTPPlugin,
  BuildPlugin,
  KVPlugin,
  DurableObjectsPlugin,
  CachePlugin,
  SitesPlugin,
  SchedulerPlugin,
  HTMLRewriterPlugin,
  WebSocketPlugin,
  BindingsPlugin,
};

export type Plugins = typeof PLUGINS;
