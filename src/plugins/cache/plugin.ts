import { Plugin, type PluginContext } from "../../shared/plugin.js";

export interface CacheOptions {}

/** The Cache API; built in src/plugins/cache/ */
export class CachePlugin extends Plugin<CacheOptions> implements CacheOptions {
  constructor(ctx: PluginContext, options?: CacheOptions) {
    super(ctx);
    this.assignOptions(options);
  }
}
