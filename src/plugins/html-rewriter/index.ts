export { HTMLRewriterPlugin } from "./plugin.js";
export { type DocumentHandlers, type ElementHandlers, HTMLRewriter, withEnableEsiTags } from "./rewriter.js";
