// What the package exports of Workers Sites (as Miniflare 2's @miniflare/sites)
export {
  FilteredKVNamespace,
  type FilteredKVStorageNamespaceOptions,
  type KeyMapper,
} from "./filtered.js";
export { SitesPlugin, type SitesOptions } from "./plugin.js";
