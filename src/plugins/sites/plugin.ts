import { Plugin, type PluginContext } from "../../shared/plugin.js";

export interface SitesOptions {}

/** Workers Sites; built in src/plugins/sites/ */
export class SitesPlugin extends Plugin<SitesOptions> implements SitesOptions {
  constructor(ctx: PluginContext, options?: SitesOptions) {
    super(ctx);
    this.assignOptions(options);
  }
}
