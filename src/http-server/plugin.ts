import type { CorePluginSignatures } from "../core/core.js";
import fs from "node:fs/promises";
import type http from "node:http";
import os from "node:os";
import path from "node:path";
import { dim } from "kleur/colors";
import { type Clock, defaultClock } from "../shared/data.js";
import {
  Option,
  OptionType,
  Plugin,
  type PluginContext,
  type SetupResult,
} from "../shared/plugin.js";
import { generateCertificate } from "./cert.js";
import { DEFAULT_CF } from "./cf.js";

export const DEFAULT_PORT = 8787;
// Unlike Miniflare 2 (all interfaces), listen on loopback unless a host is
// given: a development server shouldn't be reachable from the network
export const DEFAULT_HOST = "127.0.0.1";
/** Production's request body limit (Free and Pro plans) */
export const DEFAULT_REQUEST_BODY_LIMIT = 100 * 1024 * 1024; /* 100MiB */
// Node's default is 60 s, checked every 30 s: a client dribbling its headers
// held a connection for about 90 s
export const DEFAULT_HEADERS_TIMEOUT = 20_000; /* ms */

const DAY = 86_400_000;
const CERT_DAYS = 30;
const CF_DAYS = 30;
const CF_ENDPOINT = "https://workers.cloudflare.com/cf.json";

/** Where `https: true` keeps its certificate, relative to the working directory */
export const DEFAULT_CERT_ROOT = path.join(".mf", "cert");
/** Where `cfFetch: true` caches cf.json, relative to the working directory */
export const DEFAULT_CF_PATH = path.join("node_modules", ".mf", "cf.json");

export interface RequestMeta {
  forwardedProto?: string;
  realIp?: string;
  cf?: Record<string, any>;
}

export interface HTTPOptions {
  host?: string;
  port?: number;
  open?: boolean | string;
  https?: boolean | string;
  httpsKey?: string;
  httpsKeyPath?: string;
  httpsCert?: string;
  httpsCertPath?: string;
  httpsCa?: string;
  httpsCaPath?: string;
  httpsPfx?: string;
  httpsPfxPath?: string;
  httpsPassphrase?: string;
  cfFetch?: boolean | string;
  metaProvider?: (req: http.IncomingMessage) => RequestMeta | Promise<RequestMeta>;
  liveReload?: boolean;
  requestBodyLimit?: number;
  headersTimeout?: number;
  maxConnectionsPerIp?: number;
}

export interface ProcessedHTTPSOptions {
  key?: string | Buffer;
  cert?: string | Buffer;
  ca?: string | Buffer;
  pfx?: string | Buffer;
  passphrase?: string;
}

export interface HTTPPluginDefaults {
  certRoot?: string;
  cfPath?: string;
  cfFetch?: boolean;
  cfFetchEndpoint?: string;
  clock?: Clock;
}

/** Addresses of this machine's IPv4 interfaces */
export function getAccessibleHosts(ipv4Only = true): string[] {
  const hosts: string[] = [];
  for (const addresses of Object.values(os.networkInterfaces())) {
    for (const { family, address } of addresses ?? []) {
      if (!ipv4Only || family === "IPv4") hosts.push(address);
    }
  }
  return hosts;
}

/** `value`, or the file's text (or bytes: a PFX is binary) */
async function valueOrFile(value?: string, filePath?: string, binary = false): Promise<string | Buffer | undefined> {
  if (value !== undefined) return value;
  if (filePath === undefined) return undefined;
  return binary ? fs.readFile(filePath) : fs.readFile(filePath, "utf8");
}

/** Plugins of a host the HTTP server can serve: HTTPPlugin is optional */
export type HTTPPluginSignatures = CorePluginSignatures & { HTTPPlugin?: typeof HTTPPlugin };

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

  @Option({
    type: OptionType.BOOLEAN_STRING,
    alias: "O",
    description: "Open a browser at the server's URL (or the given one)",
    fromWrangler: ({ miniflare }) => miniflare?.open,
  })
  open?: boolean | string;

  @Option({
    type: OptionType.BOOLEAN_STRING,
    description: "Serve HTTPS with a self-signed certificate (kept in .mf/cert, or the given folder)",
    logName: "HTTPS",
    fromWrangler: ({ miniflare }) =>
      typeof miniflare?.https === "object" ? undefined : miniflare?.https,
  })
  https?: boolean | string;

  @Option({ type: OptionType.NONE })
  httpsKey?: string;

  @Option({
    type: OptionType.STRING,
    name: "https-key",
    description: "Path to a PEM TLS key",
    logName: "HTTPS Key",
    fromWrangler: ({ miniflare }) =>
      typeof miniflare?.https === "object" ? miniflare.https.key : undefined,
  })
  httpsKeyPath?: string;

  @Option({ type: OptionType.NONE })
  httpsCert?: string;

  @Option({
    type: OptionType.STRING,
    name: "https-cert",
    description: "Path to a PEM TLS certificate chain",
    logName: "HTTPS Cert",
    fromWrangler: ({ miniflare }) =>
      typeof miniflare?.https === "object" ? miniflare.https.cert : undefined,
  })
  httpsCertPath?: string;

  @Option({ type: OptionType.NONE })
  httpsCa?: string;

  @Option({
    type: OptionType.STRING,
    name: "https-ca",
    description: "Path to trusted CA certificates",
    logName: "HTTPS CA",
    fromWrangler: ({ miniflare }) =>
      typeof miniflare?.https === "object" ? miniflare.https.ca : undefined,
  })
  httpsCaPath?: string;

  @Option({ type: OptionType.NONE })
  httpsPfx?: string;

  @Option({
    type: OptionType.STRING,
    name: "https-pfx",
    description: "Path to a PFX/PKCS12 key and certificate chain",
    logName: "HTTPS PFX",
    fromWrangler: ({ miniflare }) =>
      typeof miniflare?.https === "object" ? miniflare.https.pfx : undefined,
  })
  httpsPfxPath?: string;

  @Option({
    type: OptionType.STRING,
    description: "Passphrase of the TLS key or PFX",
    logName: "HTTPS Passphrase",
    logValue: () => "**********",
    fromWrangler: ({ miniflare }) =>
      typeof miniflare?.https === "object" ? miniflare.https.passphrase : undefined,
  })
  httpsPassphrase?: string;

  @Option({
    type: OptionType.BOOLEAN_STRING,
    description: "Fetch the Request cf object from Cloudflare (cached in node_modules/.mf/cf.json, or the given file)",
    negatable: true,
    logName: "Request cf Object Fetch",
    logValue(value: boolean | string) {
      if (value === true) return DEFAULT_CF_PATH;
      if (value === false) return undefined;
      return path.relative("", value);
    },
    fromWrangler: ({ miniflare }) => miniflare?.cf_fetch,
  })
  cfFetch?: boolean | string;

  @Option({ type: OptionType.NONE })
  metaProvider?: (req: http.IncomingMessage) => RequestMeta | Promise<RequestMeta>;

  @Option({
    type: OptionType.BOOLEAN,
    description: "Reload open HTML pages whenever the worker reloads",
    logName: "Live Reload",
    fromWrangler: ({ miniflare }) => miniflare?.live_reload,
  })
  liveReload?: boolean;

  @Option({
    type: OptionType.NUMBER,
    description: "Largest request body accepted, in bytes (default 100 MiB)",
    logName: "Request Body Limit",
  })
  requestBodyLimit?: number;

  @Option({
    type: OptionType.NUMBER,
    description: "Close connections whose request headers take longer, in ms (default 20000)",
    logName: "Headers Timeout",
  })
  headersTimeout?: number;

  @Option({
    type: OptionType.NUMBER,
    description: "Most connections open at once from one client address (default unlimited)",
    logName: "Max Connections Per IP",
  })
  maxConnectionsPerIp?: number;

  readonly httpsEnabled: boolean;
  readonly #defaults: Required<Omit<HTTPPluginDefaults, "cfFetch">> & { cfFetch: boolean };
  #cf: Record<string, any> = DEFAULT_CF;
  #cfLoaded?: Promise<void>;
  #httpsOptions?: ProcessedHTTPSOptions;

  constructor(ctx: PluginContext, options?: HTTPOptions, defaults: HTTPPluginDefaults = {}) {
    super(ctx);
    this.assignOptions(options);
    // Limits of our own (Miniflare 2 had none): a bad one is an error here,
    // not a server that silently turns a timeout off or refuses everyone
    // (a headers timeout of 0 turns it off, as in Node; a connection cap of
    // 0 would refuse everyone)
    for (const [name, value, least] of [
      ["requestBodyLimit", this.requestBodyLimit, 0],
      ["headersTimeout", this.headersTimeout, 0],
      ["maxConnectionsPerIp", this.maxConnectionsPerIp, 1],
    ] as const) {
      if (value !== undefined && !(Number.isSafeInteger(value) && value >= least)) {
        throw new RangeError(`${name} must be a whole number, ${least} or more: got ${String(value)}`);
      }
    }
    this.#defaults = {
      certRoot: defaults.certRoot ?? path.resolve(DEFAULT_CERT_ROOT),
      cfPath: defaults.cfPath ?? path.resolve(DEFAULT_CF_PATH),
      // Tests shouldn't depend on the network
      cfFetch: defaults.cfFetch ?? process.env.NODE_ENV !== "test",
      cfFetchEndpoint: defaults.cfFetchEndpoint ?? CF_ENDPOINT,
      clock: defaults.clock ?? defaultClock,
    };
    this.httpsEnabled = Boolean(
      this.https ||
        this.httpsKey ||
        this.httpsKeyPath ||
        this.httpsCert ||
        this.httpsCertPath ||
        this.httpsCa ||
        this.httpsCaPath ||
        this.httpsPfx ||
        this.httpsPfxPath
    );
  }

  /** The cf object (and client address overrides) for an incoming request */
  async getRequestMeta(req: http.IncomingMessage): Promise<RequestMeta> {
    if (this.metaProvider) return this.metaProvider(req);
    return { cf: this.#cf };
  }

  get httpsOptions(): ProcessedHTTPSOptions | undefined {
    return this.#httpsOptions;
  }

  /**
   * Loads the cached cf object, refetching it when older than 30 days. Only
   * a server needs it (dispatchFetch() requests get the cf they're given),
   * so the server starts this, and never waits for it: until (or unless) it
   * succeeds, requests get the placeholder. Runs once per plugin instance.
   */
  setupCf(): Promise<void> {
    return (this.#cfLoaded ??= this.#loadCf());
  }

  async #loadCf(): Promise<void> {
    let cfPath = this.cfFetch ?? this.#defaults.cfFetch;
    if (!cfPath || this.metaProvider) return;
    if (cfPath === true) cfPath = this.#defaults.cfPath;
    let refetch = true;
    try {
      this.#cf = JSON.parse(await fs.readFile(cfPath, "utf8"));
      const stat = await fs.stat(cfPath);
      refetch = this.#defaults.clock() - stat.mtimeMs > CF_DAYS * DAY;
    } catch {
      // Missing or malformed: fetch it
    }
    if (!refetch) return;
    // Gives up after 10s, without keeping the process alive meanwhile
    const controller = new AbortController();
    const timeout = setTimeout(() => controller.abort(), 10_000);
    timeout.unref();
    try {
      const res = await fetch(this.#defaults.cfFetchEndpoint, { signal: controller.signal });
      if (!res.ok) throw new Error(`${res.status} ${res.statusText} from ${this.#defaults.cfFetchEndpoint}`);
      const text = await res.text();
      const cf = JSON.parse(text);
      this.#cf = cf;
      await fs.mkdir(path.dirname(cfPath), { recursive: true });
      await fs.writeFile(cfPath, text, "utf8");
      this.ctx.log.info("Updated `Request.cf` object cache!");
    } catch (e: any) {
      try {
        this.ctx.log.warn(
          "Unable to fetch the `Request.cf` object! Falling back to a default placeholder...\n" +
            "To always use the placeholder, set the `--no-cf-fetch`/`cfFetch: false` option.\n" +
            dim(String(e?.cause?.stack ?? e?.stack ?? e))
        );
      } catch {
        // NoOpLog rethrows: a failed fetch must never crash anything
      }
    } finally {
      clearTimeout(timeout);
    }
  }

  /** Reads (or generates) the TLS key and certificate */
  async setupHttps(): Promise<void> {
    if (!this.httpsEnabled) return;
    let keyPath = this.httpsKeyPath;
    let certPath = this.httpsCertPath;
    let https = this.https;
    if (https === true) https = this.#defaults.certRoot;
    if (typeof https === "string") {
      keyPath = path.join(https, "key.pem");
      certPath = path.join(https, "cert.pem");
      let regenerate = true;
      try {
        const keyStat = await fs.stat(keyPath);
        const certStat = await fs.stat(certPath);
        const created = Math.max(keyStat.mtimeMs, certStat.mtimeMs);
        // Renewed a little before it expires
        regenerate = this.#defaults.clock() - created > (CERT_DAYS - 2) * DAY;
      } catch {
        // Missing: generate
      }
      if (regenerate) {
        this.ctx.log.info("Generating new self-signed certificate...");
        const { key, cert } = await generateCertificate(this.#defaults.clock(), CERT_DAYS, getAccessibleHosts());
        await fs.mkdir(https, { recursive: true });
        await fs.writeFile(keyPath, key, { encoding: "utf8", mode: 0o600 });
        await fs.writeFile(certPath, cert, "utf8");
      }
    }
    this.#httpsOptions = {
      key: await valueOrFile(this.httpsKey, keyPath),
      cert: await valueOrFile(this.httpsCert, certPath),
      ca: await valueOrFile(this.httpsCa, this.httpsCaPath),
      pfx: await valueOrFile(this.httpsPfx, this.httpsPfxPath, true),
      passphrase: this.httpsPassphrase,
    };
  }

  async setup(): Promise<SetupResult> {
    await this.setupHttps();
    return {};
  }
}
