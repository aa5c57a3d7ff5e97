import { Plugin, type PluginContext, type SetupResult } from "../../shared/plugin.js";
import { configuredHTMLRewriter } from "./rewriter.js";

/**
 * HTMLRewriter for workers (no options): the `HTMLRewriter` global, shaped
 * by the worker's compatibility settings. With
 * `html_rewriter_treats_esi_include_as_void_tag`, `<esi:include>` is a void
 * tag; transformed responses follow the flags other responses do
 * (`formdata_parser_supports_files`, `workers_api_getters_setters_on_prototype`).
 */
export class HTMLRewriterPlugin extends Plugin {
  // (No options: the parameter keeps the plugin's option type an empty object)
  constructor(ctx: PluginContext, _options?: object) {
    super(ctx);
  }

  setup(): SetupResult {
    const { compat } = this.ctx;
    const HTMLRewriter = configuredHTMLRewriter({
      enableEsiTags: compat.isEnabled("html_rewriter_treats_esi_include_as_void_tag"),
      stringFormDataFiles: !compat.isEnabled("formdata_parser_supports_files"),
      enumerableGetters: !compat.isEnabled("workers_api_getters_setters_on_prototype"),
    });
    return { globals: { HTMLRewriter } };
  }
}
