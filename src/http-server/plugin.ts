import {
  Option,
  OptionType,
  Plugin,
  type PluginContext,
} from "../shared/plugin.js";

export const DEFAULT_PORT = 8787;
// Unlike Miniflare 2 (all interfaces), listen on loopback unless a host is
// given: a development server shouldn't be reachable from the network
export const DEFAULT_HOST = "127.0.0.1";

export interface HTTPOptions {
  host?: string;
  port?: number;
}

export class HTTPPlugin extends Plugin<HTTPOptions> implements HTTPOptions {
  @Option({
    type: OptionType.STRING,
    alias: "H",
    description: "Address to listen on (default 127.0.0.1)",
    fromWrangler: ({ miniflare }) => miniflare?.host,
  })
  host?: string;

  @Option({
    type: OptionType.NUMBER,
    alias: "p",
    description: "Port to listen on (default 8787)",
    fromWrangler: ({ miniflare }) => miniflare?.port,
  })
  port?: number;

  constructor(ctx: PluginContext, options?: HTTPOptions) {
    super(ctx);
    this.assignOptions(options);
  }
}
