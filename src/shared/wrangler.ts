// The parts of wrangler.toml Miniflare reads (see docs/core.md)

import type { ModuleRuleType } from "./runner.js";

export interface WranglerServiceConfig {
  name?: string;
  binding?: string;
  service: string;
  environment?: string;
}

export type WranglerRoute =
  | string
  | { pattern: string; zone_id?: string; zone_name?: string };

export interface WranglerEnvironmentConfig {
  name?: string;
  zone_id?: string;
  account_id?: string;
  workers_dev?: boolean;
  route?: WranglerRoute;
  routes?: WranglerRoute[];
  webpack_config?: string;
  vars?: Record<string, unknown>;
  kv_namespaces?: { binding: string; id?: string; preview_id?: string }[];
  r2_buckets?: { binding: string; bucket_name?: string; preview_bucket_name?: string }[];
  d1_databases?: { binding: string; database_name?: string; database_id?: string }[];
  durable_objects?: {
    bindings?: { name: string; class_name: string; script_name?: string }[];
  };
  queues?: {
    producers?: { binding: string; queue: string }[];
    consumers?: {
      queue: string;
      max_batch_size?: number;
      max_batch_timeout?: number;
      max_retries?: number;
      dead_letter_queue?: string;
    }[];
  };
  triggers?: { crons?: string[] };
  usage_model?: "bundled" | "unbound";
  wasm_modules?: Record<string, string>;
  text_blobs?: Record<string, string>;
  data_blobs?: Record<string, string>;
  services?: WranglerServiceConfig[];
  experimental_services?: WranglerServiceConfig[];
  site?: {
    bucket: string;
    "entry-point"?: string;
    include?: string[];
    exclude?: string[];
  };
  build?: {
    command?: string;
    cwd?: string;
    watch_dir?: string | string[];
    upload?: {
      format?: "service-worker" | "modules";
      dir?: string;
      main?: string;
      rules?: { type: ModuleRuleType; globs: string[]; fallthrough?: boolean }[];
    };
  };
  miniflare?: {
    globals?: Record<string, unknown>;
    upstream?: string;
    watch?: boolean;
    build_watch_dirs?: string[];
    kv_persist?: boolean | string;
    d1_persist?: boolean | string;
    r2_persist?: boolean | string;
    cache?: boolean;
    cache_persist?: boolean | string;
    durable_objects_persist?: boolean | string;
    durable_objects_alarms?: boolean;
    env_path?: string;
    host?: string;
    port?: number;
    open?: boolean | string;
    cf_fetch?: boolean | string;
    https?:
      | boolean
      | string
      | { key?: string; cert?: string; ca?: string; pfx?: string; passphrase?: string };
    live_reload?: boolean;
    update_check?: boolean;
    mounts?: Record<string, string>;
    route?: string;
    routes?: string[];
    global_async_io?: boolean;
    global_timers?: boolean;
    global_random?: boolean;
    actual_time?: boolean;
    inaccurate_cpu?: boolean;
  };
}

/** wrangler.toml's [miniflare] table */
export type WranglerMiniflareConfig = NonNullable<WranglerEnvironmentConfig["miniflare"]>;

export interface WranglerConfig extends WranglerEnvironmentConfig {
  type?: "javascript" | "webpack" | "rust";
  compatibility_date?: string;
  compatibility_flags?: string[];
  env?: Record<string, WranglerEnvironmentConfig>;
}
