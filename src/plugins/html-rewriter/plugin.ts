import { Plugin, type PluginContext } from "../../shared/plugin.js";

/** HTMLRewriter for workers (no options); built in src/plugins/html-rewriter/ */
export class HTMLRewriterPlugin extends Plugin {
  // (No options: the parameter keeps the plugin's option type an empty object)
  constructor(ctx: PluginContext, _options?: object) {
    super(ctx);
  }
}
