import { numericCompare } from "./data.js";

/**
 * Every compatibility flag Miniflare 2.14.4 implements, plus
 * workers_api_getters_setters_on_prototype, which it doesn't (it always
 * behaves as if the flag were off).
 */
export type CompatibilityEnableFlag =
  | "nodejs_compat"
  | "streams_enable_constructors"
  | "transformstream_enable_standard_constructor"
  | "export_commonjs_default"
  | "r2_list_honor_include"
  | "global_navigator"
  | "durable_object_fetch_requires_full_url"
  | "fetch_refuses_unknown_protocols"
  | "formdata_parser_supports_files"
  | "html_rewriter_treats_esi_include_as_void_tag"
  | "workers_api_getters_setters_on_prototype"
  | "experimental";

export type CompatibilityDisableFlag =
  | "streams_disable_constructors"
  | "transformstream_disable_standard_constructor"
  | "export_commonjs_namespace"
  | "no_global_navigator"
  | "durable_object_fetch_allows_relative_url"
  | "fetch_treats_unknown_protocols_as_http"
  | "formdata_parser_converts_files_to_strings"
  | "workers_api_getters_setters_on_instance";

export type CompatibilityFlag =
  | CompatibilityEnableFlag
  | CompatibilityDisableFlag;

interface Feature {
  /** Date from which the feature is on without a flag (none: never) */
  defaultAsOf?: string;
  enableFlag: CompatibilityEnableFlag;
  disableFlag?: CompatibilityDisableFlag;
}

// https://developers.cloudflare.com/workers/platform/compatibility-dates
const FEATURES: Feature[] = [
  { enableFlag: "nodejs_compat" },
  {
    defaultAsOf: "2022-11-30",
    enableFlag: "streams_enable_constructors",
    disableFlag: "streams_disable_constructors",
  },
  {
    defaultAsOf: "2022-11-30",
    enableFlag: "transformstream_enable_standard_constructor",
    disableFlag: "transformstream_disable_standard_constructor",
  },
  {
    defaultAsOf: "2022-10-31",
    enableFlag: "export_commonjs_default",
    disableFlag: "export_commonjs_namespace",
  },
  { defaultAsOf: "2022-08-04", enableFlag: "r2_list_honor_include" },
  {
    defaultAsOf: "2022-03-21",
    enableFlag: "global_navigator",
    disableFlag: "no_global_navigator",
  },
  {
    defaultAsOf: "2021-11-10",
    enableFlag: "durable_object_fetch_requires_full_url",
    disableFlag: "durable_object_fetch_allows_relative_url",
  },
  {
    defaultAsOf: "2021-11-10",
    enableFlag: "fetch_refuses_unknown_protocols",
    disableFlag: "fetch_treats_unknown_protocols_as_http",
  },
  {
    defaultAsOf: "2021-11-03",
    enableFlag: "formdata_parser_supports_files",
    disableFlag: "formdata_parser_converts_files_to_strings",
  },
  {
    defaultAsOf: "2022-01-31",
    enableFlag: "workers_api_getters_setters_on_prototype",
    disableFlag: "workers_api_getters_setters_on_instance",
  },
  { enableFlag: "html_rewriter_treats_esi_include_as_void_tag" },
  { enableFlag: "experimental" },
];

/**
 * Resolves a compatibility date and flags to the set of enabled features.
 * An explicit disable flag beats both the enable flag and the date; unknown
 * flags are ignored.
 */
export class Compatibility {
  #date: string;
  #flags: string[];
  #enabled = new Set<CompatibilityEnableFlag>();

  constructor(compatibilityDate = "1970-01-01", compatibilityFlags: string[] = []) {
    this.#date = compatibilityDate;
    this.#flags = compatibilityFlags;
    this.#rebuild();
  }

  get compatibilityDate(): string {
    return this.#date;
  }

  get compatibilityFlags(): string[] {
    return this.#flags;
  }

  #rebuild(): void {
    this.#enabled.clear();
    const flags = new Set(this.#flags);
    for (const { defaultAsOf, enableFlag, disableFlag } of FEATURES) {
      if (disableFlag !== undefined && flags.has(disableFlag)) continue;
      const byDate =
        defaultAsOf !== undefined && numericCompare(defaultAsOf, this.#date) <= 0;
      if (flags.has(enableFlag) || byDate) this.#enabled.add(enableFlag);
    }
  }

  isEnabled(flag: CompatibilityEnableFlag): boolean {
    return this.#enabled.has(flag);
  }

  /** Returns true if the date or flags changed */
  /** Whether this is the compatibility of that date and those flags */
  matches(compatibilityDate = "1970-01-01", compatibilityFlags: string[] = []): boolean {
    return (
      this.#date === compatibilityDate &&
      this.#flags.length === compatibilityFlags.length &&
      this.#flags.every((flag, i) => compatibilityFlags[i] === flag)
    );
  }

  update(compatibilityDate = "1970-01-01", compatibilityFlags: string[] = []): boolean {
    if (this.matches(compatibilityDate, compatibilityFlags)) return false;
    this.#date = compatibilityDate;
    this.#flags = compatibilityFlags;
    this.#rebuild();
    return true;
  }

  get enabled(): CompatibilityEnableFlag[] {
    return [...this.#enabled];
  }
}
