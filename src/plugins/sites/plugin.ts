// Workers Sites: the `sitePath` folder (--site, wrangler [site] bucket) bound
// as `__STATIC_CONTENT`, a read-only KV namespace over its files, with
// `__STATIC_CONTENT_MANIFEST` (a binding, and an importable module) mapping
// each file's path to its key, as wrangler uploads a site.
//
// Manifest keys carry SITES_NO_CACHE_PREFIX, which the Cache API never stores
// (as in Miniflare 2), so @cloudflare/kv-asset-handler reads every file from
// disk and edits are served at once; the namespace strips the prefix again.
import path from "node:path";
import { globsToMatcher, SITES_NO_CACHE_PREFIX } from "../../shared/data.js";
import { Option, OptionType, Plugin, type PluginContext, type SetupResult } from "../../shared/plugin.js";
import type { Matcher } from "../../shared/runner.js";
import { FilteredKVNamespace, type FilteredKVStorageNamespaceOptions, isIncluded, type KeyMapper } from "./filtered.js";
import { SiteStorage } from "./storage.js";

/** Manifest keys to file paths, and back */
const SITES_KEY_MAPPER: KeyMapper = {
  lookup(key: string): string {
    if (!key.startsWith(SITES_NO_CACHE_PREFIX)) return key;
    try {
      return decodeURIComponent(key.substring(SITES_NO_CACHE_PREFIX.length));
    } catch {
      // Broken escapes name no manifest entry: looked up as given
      return key;
    }
  },
  // Encoded so the key is a byte string: kv-asset-handler makes it the ETag
  reverseLookup: (key: string): string => SITES_NO_CACHE_PREFIX + encodeURIComponent(key),
};

export interface SitesOptions {
  /** Folder of the site's files, relative to the root path (no site when unset) */
  sitePath?: string;
  /** Globs of the files to serve; with them, `siteExclude` is ignored */
  siteInclude?: string[];
  /** Globs of the files not to serve */
  siteExclude?: string[];
}

export class SitesPlugin extends Plugin<SitesOptions> implements SitesOptions {
  @Option({
    type: OptionType.STRING,
    name: "site",
    alias: "s",
    description: "Folder of Workers Site files to serve",
    logName: "Workers Site Path",
    fromWrangler: ({ site }) => site?.bucket,
  })
  sitePath?: string;

  @Option({
    type: OptionType.ARRAY,
    description: "Glob of site files to serve (repeatable)",
    logName: "Workers Site Include",
    fromWrangler: ({ site }) => site?.include,
  })
  siteInclude?: string[];

  @Option({
    type: OptionType.ARRAY,
    description: "Glob of site files not to serve (repeatable)",
    logName: "Workers Site Exclude",
    fromWrangler: ({ site }) => site?.exclude,
  })
  siteExclude?: string[];

  // Made once: setup() runs again whenever a file in the folder changes
  readonly #site?: {
    path: string;
    storage: SiteStorage;
    filter: FilteredKVStorageNamespaceOptions;
    namespace: FilteredKVNamespace;
  };

  constructor(ctx: PluginContext, options?: SitesOptions) {
    super(ctx);
    this.assignOptions(options);
    if (!this.sitePath) return;
    // Relative to the root path, as Miniflare 2 resolved it
    const sitePath = path.resolve(ctx.rootPath, this.sitePath);
    const storage = new SiteStorage(sitePath);
    const filter = {
      include: matcher(this.siteInclude),
      exclude: matcher(this.siteExclude),
    };
    const namespace = new FilteredKVNamespace(storage, { ...filter, readOnly: true, map: SITES_KEY_MAPPER });
    this.#site = { path: sitePath, storage, filter, namespace };
  }

  async setup(): Promise<SetupResult> {
    const site = this.#site;
    if (site === undefined) return {};
    // The files the namespace serves, keyed as the worker asks for them
    const manifest: Record<string, string> = {};
    for (const file of await site.storage.paths()) {
      if (isIncluded(site.filter, file)) manifest[file] = SITES_KEY_MAPPER.reverseLookup(file);
    }
    const json = JSON.stringify(manifest);
    return {
      bindings: { __STATIC_CONTENT: site.namespace, __STATIC_CONTENT_MANIFEST: json },
      // `import manifest from "__STATIC_CONTENT_MANIFEST"`
      additionalModules: { __STATIC_CONTENT_MANIFEST: { default: json } },
      // Rebuilds the manifest when a file is added, removed or renamed
      watch: [site.path],
    };
  }
}

/** Globs as Miniflare 2 matches them (anywhere in the path, "!" negates), if any */
function matcher(globs?: string[]): Matcher | undefined {
  return globs === undefined ? undefined : globsToMatcher(globs);
}
