import assert from "node:assert/strict";
import { X509Certificate, createPrivateKey } from "node:crypto";
import fs from "node:fs/promises";
import http from "node:http";
import path from "node:path";
import { test, type TestContext } from "node:test";
import { parseArgv } from "../../src/cli/args.js";
import { cliOptions } from "../../src/cli/main.js";
import { getPluginEntries, splitPluginOptions, splitWranglerConfig } from "../../src/core/options.js";
import { readWranglerConfig } from "../../src/core/wrangler.js";
import { DEFAULT_CF } from "../../src/http-server/cf.js";
import {
  DEFAULT_CF_PATH,
  HTTPPlugin,
  type HTTPOptions,
  type HTTPPluginDefaults,
} from "../../src/http-server/plugin.js";
import { PLUGINS } from "../../src/plugins.js";
import { CorePlugin } from "../../src/plugins/core/plugin.js";
import { Compatibility } from "../../src/shared/compat.js";
import { LogLevel } from "../../src/shared/log.js";
import { logOptions, OptionType, type PluginContext } from "../../src/shared/plugin.js";
import type { WranglerConfig } from "../../src/shared/wrangler.js";
import { useServer } from "../helpers/http.js";
import { TestLog } from "../helpers/log.js";
import { useMiniflare } from "../helpers/miniflare.js";
import { flushTurns, until } from "../helpers/sync.js";
import { useTmp, writeFiles } from "../helpers/tmp.js";
import { HostRegistry } from "../../src/shared/registry.js";

const DAY = 86_400_000;
const CF_WARNING = "Unable to fetch the `Request.cf` object! Falling back to a default placeholder...";
const GENERATING = "Generating new self-signed certificate...";
const CF_UPDATED = "Updated `Request.cf` object cache!";

function pluginContext(log = new TestLog()): PluginContext {
  return { log, compat: new Compatibility(), rootPath: process.cwd(), registry: new HostRegistry() };
}

function plugin(
  options?: HTTPOptions,
  defaults?: HTTPPluginDefaults,
  log = new TestLog()
): { plugin: HTTPPlugin; log: TestLog } {
  return { plugin: new HTTPPlugin(pluginContext(log), options, defaults), log };
}

// Never touch the network or the working directory, whatever NODE_ENV says
function isolatedDefaults(tmp: string, extra: HTTPPluginDefaults = {}): HTTPPluginDefaults {
  return {
    certRoot: path.join(tmp, "default-cert"),
    cfPath: path.join(tmp, "default-cf.json"),
    cfFetch: false,
    cfFetchEndpoint: "http://127.0.0.1:9/unreachable",
    ...extra,
  };
}

const httpEntries = getPluginEntries({ HTTPPlugin });
function fromWrangler(config: WranglerConfig, overrides: HTTPOptions = {}) {
  return splitWranglerConfig(
    httpEntries,
    splitPluginOptions(httpEntries, overrides),
    config,
    "/project",
    new TestLog()
  ).HTTPPlugin;
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

test("HTTPPlugin: declares its options with their types, flags and aliases", () => {
  const opts = HTTPPlugin.prototype.opts!;
  const expected: [string, OptionType, string | undefined, string | undefined][] = [
    ["host", OptionType.STRING, undefined, "H"],
    ["port", OptionType.NUMBER, undefined, "p"],
    ["open", OptionType.BOOLEAN_STRING, undefined, "O"],
    ["https", OptionType.BOOLEAN_STRING, undefined, undefined],
    ["httpsKey", OptionType.NONE, undefined, undefined],
    ["httpsKeyPath", OptionType.STRING, "https-key", undefined],
    ["httpsCert", OptionType.NONE, undefined, undefined],
    ["httpsCertPath", OptionType.STRING, "https-cert", undefined],
    ["httpsCa", OptionType.NONE, undefined, undefined],
    ["httpsCaPath", OptionType.STRING, "https-ca", undefined],
    ["httpsPfx", OptionType.NONE, undefined, undefined],
    ["httpsPfxPath", OptionType.STRING, "https-pfx", undefined],
    ["httpsPassphrase", OptionType.STRING, undefined, undefined],
    ["cfFetch", OptionType.BOOLEAN_STRING, undefined, undefined],
    ["metaProvider", OptionType.NONE, undefined, undefined],
    ["liveReload", OptionType.BOOLEAN, undefined, undefined],
    ["requestBodyLimit", OptionType.NUMBER, undefined, undefined],
    ["headersTimeout", OptionType.NUMBER, undefined, undefined],
    ["maxConnectionsPerIp", OptionType.NUMBER, undefined, undefined],
  ];
  assert.deepEqual([...opts.keys()], expected.map(([key]) => key));
  for (const [key, type, name, alias] of expected) {
    const meta = opts.get(key)!;
    assert.equal(meta.type, type, key);
    assert.equal(meta.name, name, key);
    assert.equal(meta.alias, alias, key);
  }
  assert.equal(opts.get("cfFetch")!.negatable, true);
});

test("HTTPPlugin: assigns options given through the API", () => {
  const metaProvider = () => ({});
  const options: HTTPOptions = {
    host: "0.0.0.0",
    port: 1234,
    open: "http://localhost:1234/page",
    https: "./cert",
    httpsKey: "key",
    httpsKeyPath: "key.pem",
    httpsCert: "cert",
    httpsCertPath: "cert.pem",
    httpsCa: "ca",
    httpsCaPath: "ca.pem",
    httpsPfx: "pfx",
    httpsPfxPath: "cert.pfx",
    httpsPassphrase: "passphrase",
    cfFetch: "./cf.json",
    metaProvider,
    liveReload: true,
    requestBodyLimit: 1024,
  };
  const { plugin: p } = plugin(options);
  for (const [key, value] of Object.entries(options)) {
    assert.equal((p as any)[key], value, key);
  }
  const { plugin: empty } = plugin();
  for (const key of Object.keys(options)) assert.equal((empty as any)[key], undefined, key);
});

test("HTTPPlugin: a limit that isn't a whole number in range is a RangeError naming it", () => {
  for (const [options, message] of [
    [{ requestBodyLimit: -1 }, "requestBodyLimit must be a whole number, 0 or more: got -1"],
    [{ headersTimeout: 1.5 }, "headersTimeout must be a whole number, 0 or more: got 1.5"],
    [{ headersTimeout: Number.NaN }, "headersTimeout must be a whole number, 0 or more: got NaN"],
    [{ maxConnectionsPerIp: 0 }, "maxConnectionsPerIp must be a whole number, 1 or more: got 0"],
  ] as [HTTPOptions, string][]) {
    assert.throws(() => plugin(options), { name: "RangeError", message });
  }
  // 0 turns the headers timeout off, as in Node
  assert.equal(plugin({ headersTimeout: 0, requestBodyLimit: 0, maxConnectionsPerIp: 1 }).plugin.headersTimeout, 0);
});

test("HTTPPlugin: parses --host/-H, --port/-p and --request-body-limit", () => {
  assert.deepEqual(parseArgv(PLUGINS, ["--host", "0.0.0.0"]), { host: "0.0.0.0" });
  assert.deepEqual(parseArgv(PLUGINS, ["-H", "::1"]), { host: "::1" });
  assert.deepEqual(parseArgv(PLUGINS, ["--host=localhost"]), { host: "localhost" });
  assert.deepEqual(parseArgv(PLUGINS, ["--port", "1234"]), { port: 1234 });
  assert.deepEqual(parseArgv(PLUGINS, ["-p", "1234"]), { port: 1234 });
  assert.deepEqual(parseArgv(PLUGINS, ["-p1234"]), { port: 1234 });
  assert.deepEqual(parseArgv(PLUGINS, ["--port=0"]), { port: 0 });
  assert.deepEqual(parseArgv(PLUGINS, ["--request-body-limit", "1048576"]), { requestBodyLimit: 1048576 });
  assert.deepEqual(parseArgv(PLUGINS, ["--headers-timeout", "5000"]), { headersTimeout: 5000 });
  assert.deepEqual(parseArgv(PLUGINS, ["--max-connections-per-ip", "64"]), { maxConnectionsPerIp: 64 });
  assert.throws(() => parseArgv(PLUGINS, ["--port", "abc"]), {
    code: "ERR_VALUE",
    message: 'Unexpected value for --port: "abc" (expected number)',
  });
  assert.throws(() => parseArgv(PLUGINS, ["--request-body-limit", "lots"]), {
    code: "ERR_VALUE",
    message: 'Unexpected value for --request-body-limit: "lots" (expected number)',
  });
});

test("HTTPPlugin: a bare --host is an error, not an empty host (which would listen on every interface)", () => {
  // server.listen(port, "") binds all interfaces, so "" must never get through
  assert.throws(() => parseArgv(PLUGINS, ["--host"]), {
    code: "ERR_VALUE",
    message: /^Unexpected value for --host: /,
  });
  assert.throws(() => parseArgv(PLUGINS, ["-H", "--port", "1"]), {
    code: "ERR_VALUE",
    message: /^Unexpected value for --host: /,
  });
});

test("HTTPPlugin: parses --open/-O with and without a URL", () => {
  assert.deepEqual(parseArgv(PLUGINS, ["--open"]), { open: true });
  assert.deepEqual(parseArgv(PLUGINS, ["-O"]), { open: true });
  assert.deepEqual(parseArgv(PLUGINS, ["--open", "http://localhost:3000/a"]), { open: "http://localhost:3000/a" });
  assert.deepEqual(parseArgv(PLUGINS, ["-O", "http://example.com/"]), { open: "http://example.com/" });
  assert.deepEqual(parseArgv(PLUGINS, ["--open=http://x/"]), { open: "http://x/" });
  // The next flag isn't the URL, nor is the script
  assert.deepEqual(parseArgv(PLUGINS, ["-O", "-p", "1"]), { open: true, port: 1 });
  assert.deepEqual(parseArgv(PLUGINS, ["--open", "worker.js"]), { open: true, scriptPath: "worker.js" });
  assert.deepEqual(parseArgv(PLUGINS, ["--open", "http://localhost/", "worker.mjs"]), {
    open: "http://localhost/",
    scriptPath: "worker.mjs",
  });
});

test("HTTPPlugin: parses --https with and without a directory, never swallowing the script", () => {
  assert.deepEqual(parseArgv(PLUGINS, ["--https"]), { https: true });
  assert.deepEqual(parseArgv(PLUGINS, ["--https", "./cert"]), { https: "./cert" });
  assert.deepEqual(parseArgv(PLUGINS, ["--https=./cert"]), { https: "./cert" });
  assert.deepEqual(parseArgv(PLUGINS, ["--https", "--port", "1"]), { https: true, port: 1 });
  // Unlike Miniflare 2, a script after a bare --https is the script
  assert.deepEqual(parseArgv(PLUGINS, ["--https", "worker.js"]), { https: true, scriptPath: "worker.js" });
  assert.deepEqual(parseArgv(PLUGINS, ["--https", "src/index.ts"]), { https: true, scriptPath: "src/index.ts" });
  assert.deepEqual(parseArgv(PLUGINS, ["--https", "./cert", "worker.js"]), {
    https: "./cert",
    scriptPath: "worker.js",
  });
  assert.deepEqual(parseArgv(PLUGINS, ["worker.js", "--https"]), { https: true, scriptPath: "worker.js" });
  // ...unless given with "="
  assert.deepEqual(parseArgv(PLUGINS, ["--https=worker.js"]), { https: "worker.js" });
});

test("HTTPPlugin: parses --https-key/-cert/-ca/-pfx/-passphrase as paths and a passphrase", () => {
  assert.deepEqual(
    parseArgv(PLUGINS, [
      "--https-key",
      "key.pem",
      "--https-cert",
      "cert.pem",
      "--https-ca",
      "ca.pem",
      "--https-pfx",
      "cert.pfx",
      "--https-passphrase",
      "secret",
    ]),
    {
      httpsKeyPath: "key.pem",
      httpsCertPath: "cert.pem",
      httpsCaPath: "ca.pem",
      httpsPfxPath: "cert.pfx",
      httpsPassphrase: "secret",
    }
  );
  // The raw strings are API only
  assert.throws(() => parseArgv(PLUGINS, ["--https-key-path", "key.pem"]), { code: "ERR_OPTION" });
  assert.throws(() => parseArgv(PLUGINS, ["--https-cert-path", "cert.pem"]), { code: "ERR_OPTION" });
  assert.throws(() => parseArgv(PLUGINS, ["--meta-provider", "x"]), { code: "ERR_OPTION" });
});

test("HTTPPlugin: parses --cf-fetch [path], --no-cf-fetch and --live-reload", () => {
  assert.deepEqual(parseArgv(PLUGINS, ["--cf-fetch"]), { cfFetch: true });
  assert.deepEqual(parseArgv(PLUGINS, ["--cf-fetch", "./cf.json"]), { cfFetch: "./cf.json" });
  assert.deepEqual(parseArgv(PLUGINS, ["--cf-fetch=./cf.json"]), { cfFetch: "./cf.json" });
  assert.deepEqual(parseArgv(PLUGINS, ["--no-cf-fetch"]), { cfFetch: false });
  assert.deepEqual(parseArgv(PLUGINS, ["--cf-fetch", "worker.js"]), { cfFetch: true, scriptPath: "worker.js" });
  assert.deepEqual(parseArgv(PLUGINS, ["--live-reload"]), { liveReload: true });
  assert.deepEqual(parseArgv(PLUGINS, ["--live-reload", "worker.js"]), { liveReload: true, scriptPath: "worker.js" });
  assert.throws(() => parseArgv(PLUGINS, ["--live-reload=yes"]), {
    code: "ERR_VALUE",
    message: 'Unexpected value for --live-reload: "yes" (expected boolean)',
  });
});

test("HTTPPlugin: the CLI turns watching on with --live-reload", () => {
  assert.equal(cliOptions(parseArgv(PLUGINS, ["--live-reload"])).watch, true);
  assert.equal(cliOptions(parseArgv(PLUGINS, ["--port", "1"])).watch, undefined);
});

test("HTTPPlugin: parses options from wrangler config", () => {
  assert.deepEqual(
    fromWrangler({
      miniflare: { host: "0.0.0.0", port: 1234, open: true, https: true, cf_fetch: false, live_reload: true },
    }),
    { host: "0.0.0.0", port: 1234, open: true, https: true, cfFetch: false, liveReload: true }
  );
  assert.deepEqual(fromWrangler({ miniflare: { open: "http://localhost/", https: "./cert", cf_fetch: "./cf.json" } }), {
    open: "http://localhost/",
    https: "./cert",
    cfFetch: "./cf.json",
  });
  // The [miniflare.https] table gives the paths and passphrase
  assert.deepEqual(
    fromWrangler({
      miniflare: {
        https: { key: "./key.pem", cert: "./cert.pem", ca: "./ca.pem", pfx: "./cert.pfx", passphrase: "secret" },
      },
    }),
    {
      httpsKeyPath: "./key.pem",
      httpsCertPath: "./cert.pem",
      httpsCaPath: "./ca.pem",
      httpsPfxPath: "./cert.pfx",
      httpsPassphrase: "secret",
    }
  );
  assert.deepEqual(fromWrangler({ miniflare: { https: { key: "./key.pem" } } }), { httpsKeyPath: "./key.pem" });
  assert.deepEqual(fromWrangler({}), {});
  assert.deepEqual(fromWrangler({ miniflare: {} }), {});
  // API/CLI options win, key by key
  assert.deepEqual(fromWrangler({ miniflare: { host: "0.0.0.0", port: 1234 } }, { port: 5678 }), {
    host: "0.0.0.0",
    port: 5678,
  });
});

test("HTTPPlugin: wrangler live_reload also turns watching on", () => {
  const entries = getPluginEntries({ CorePlugin, HTTPPlugin });
  const split = splitWranglerConfig(entries, splitPluginOptions(entries, {}), { miniflare: { live_reload: true } }, "/project", new TestLog());
  assert.equal(split.HTTPPlugin.liveReload, true);
  assert.equal(split.CorePlugin.watch, true);
});

test("HTTPPlugin: reads [miniflare] and [miniflare.https] from a wrangler.toml file", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "wrangler.toml": `[miniflare]
host = "127.0.0.2"
port = 1234
open = "http://localhost:1234/"
cf_fetch = "./cf.json"
live_reload = true

[miniflare.https]
key = "./key.pem"
cert = "./cert.pem"
ca = "./ca.pem"
pfx = "./cert.pfx"
passphrase = "secret"
`,
    "dir.toml": `[miniflare]
https = "./certs"
`,
    "bool.toml": `[miniflare]
https = true
open = true
`,
  });
  assert.deepEqual(fromWrangler(await readWranglerConfig(path.join(tmp, "wrangler.toml"))), {
    host: "127.0.0.2",
    port: 1234,
    open: "http://localhost:1234/",
    httpsKeyPath: "./key.pem",
    httpsCertPath: "./cert.pem",
    httpsCaPath: "./ca.pem",
    httpsPfxPath: "./cert.pfx",
    httpsPassphrase: "secret",
    cfFetch: "./cf.json",
    liveReload: true,
  });
  assert.deepEqual(fromWrangler(await readWranglerConfig(path.join(tmp, "dir.toml"))), { https: "./certs" });
  assert.deepEqual(fromWrangler(await readWranglerConfig(path.join(tmp, "bool.toml"))), { https: true, open: true });
});

test("HTTPPlugin: logs options with the passphrase masked", () => {
  const log = new TestLog(LogLevel.DEBUG);
  logOptions(httpEntries, log, {
    HTTPPlugin: {
      host: "0.0.0.0",
      port: 1234,
      https: true,
      httpsKey: "-----BEGIN PRIVATE KEY-----",
      httpsKeyPath: "key.pem",
      httpsPassphrase: "hunter2",
      liveReload: true,
      requestBodyLimit: 1024,
    },
  });
  const lines = log.logsAtLevel(LogLevel.DEBUG);
  assert.equal(lines[0], "Options:");
  assert(lines.includes("- HTTPS Passphrase: **********"), lines.join("\n"));
  assert(lines.includes("- Host: 0.0.0.0"), lines.join("\n"));
  assert(lines.includes("- Port: 1234"), lines.join("\n"));
  assert(lines.includes("- HTTPS: true"), lines.join("\n"));
  assert(lines.includes("- HTTPS Key: key.pem"), lines.join("\n"));
  assert(lines.includes("- Live Reload: true"), lines.join("\n"));
  assert(lines.includes("- Request Body Limit: 1024"), lines.join("\n"));
  for (const line of lines) {
    assert(!line.includes("hunter2"), line);
    // Raw keys aren't logged at all
    assert(!line.includes("BEGIN PRIVATE KEY"), line);
  }

  // cfFetch: the default cache path when true, nothing when false
  log.clear();
  logOptions(httpEntries, log, { HTTPPlugin: { cfFetch: true } });
  assert.deepEqual(log.logsAtLevel(LogLevel.DEBUG), ["Options:", `- Request cf Object Fetch: ${DEFAULT_CF_PATH}`]);
  log.clear();
  logOptions(httpEntries, log, { HTTPPlugin: { cfFetch: false } });
  assert.deepEqual(log.logsAtLevel(LogLevel.DEBUG), ["Options:"]);
});

test("HTTPPlugin: Miniflare's debug options log never shows the passphrase", async (t) => {
  const log = new TestLog(LogLevel.DEBUG);
  const mf = useMiniflare(t, {
    log,
    modules: true,
    script: "export default { fetch: () => new Response('ok') }",
    httpsPassphrase: "correct horse battery staple",
    cfFetch: false,
  });
  await mf.getPlugins();
  const lines = log.logs.map(([, message]) => message);
  assert(lines.includes("- HTTPS Passphrase: **********"), lines.join("\n"));
  for (const line of lines) assert(!line.includes("correct horse"), line);
});

// ---------------------------------------------------------------------------
// HTTPS
// ---------------------------------------------------------------------------

test("HTTPPlugin: httpsEnabled when any certificate option is set", () => {
  assert.equal(plugin().plugin.httpsEnabled, false);
  assert.equal(plugin({ https: false }).plugin.httpsEnabled, false);
  // A passphrase alone has nothing to unlock
  assert.equal(plugin({ httpsPassphrase: "secret" }).plugin.httpsEnabled, false);
  assert.equal(plugin({ host: "0.0.0.0", port: 1, cfFetch: true }).plugin.httpsEnabled, false);
  const enabling: HTTPOptions[] = [
    { https: true },
    { https: "./cert" },
    { httpsKey: "key" },
    { httpsKeyPath: "key.pem" },
    { httpsCert: "cert" },
    { httpsCertPath: "cert.pem" },
    { httpsCa: "ca" },
    { httpsCaPath: "ca.pem" },
    { httpsPfx: "pfx" },
    { httpsPfxPath: "cert.pfx" },
  ];
  for (const options of enabling) {
    assert.equal(plugin(options).plugin.httpsEnabled, true, JSON.stringify(options));
  }
});

test("HTTPPlugin: setupHttps does nothing without HTTPS", async (t) => {
  const tmp = await useTmp(t);
  const { plugin: p, log } = plugin({}, isolatedDefaults(tmp));
  await p.setupHttps();
  assert.equal(p.httpsOptions, undefined);
  assert.deepEqual(log.logs, []);
  await assert.rejects(fs.access(path.join(tmp, "default-cert")));
});

function assertLocalhostCert(certPem: string, keyPem: string, now: number): X509Certificate {
  const cert = new X509Certificate(certPem);
  assert.match(cert.subject, /(^|\n)CN=localhost(\n|$)/);
  const altNames = (cert.subjectAltName ?? "").split(", ");
  assert(altNames.includes("DNS:localhost"), cert.subjectAltName);
  assert(altNames.includes("IP Address:127.0.0.1"), cert.subjectAltName);
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  // Valid now, for about 30 days
  assert(from <= now, `${cert.validFrom} should be before ${new Date(now).toUTCString()}`);
  assert(from > now - DAY, cert.validFrom);
  const days = (to - from) / DAY;
  assert(days >= 29.9 && days <= 30.1, `valid for ${days} days`);
  // The key is the certificate's
  assert(cert.checkPrivateKey(createPrivateKey(keyPem)));
  const key = createPrivateKey(keyPem);
  assert.equal(key.asymmetricKeyType, "rsa");
  assert.equal(key.asymmetricKeyDetails?.modulusLength, 2048);
  return cert;
}

test("HTTPPlugin: setupHttps generates a self-signed localhost certificate in the given directory", async (t) => {
  const tmp = await useTmp(t);
  const certDir = path.join(tmp, "nested", "cert");
  const { plugin: p, log } = plugin({ https: certDir }, isolatedDefaults(tmp));
  const before = Date.now();
  await p.setupHttps();
  const key = await fs.readFile(path.join(certDir, "key.pem"), "utf8");
  const cert = await fs.readFile(path.join(certDir, "cert.pem"), "utf8");
  assert.match(key, /^-----BEGIN (RSA )?PRIVATE KEY-----/);
  assert.match(cert, /^-----BEGIN CERTIFICATE-----/);
  assertLocalhostCert(cert, key, before);
  assert.deepEqual(log.logsAtLevel(LogLevel.INFO), [GENERATING]);
  assert.deepEqual(p.httpsOptions, { key, cert, ca: undefined, pfx: undefined, passphrase: undefined });
  if (process.platform !== "win32") {
    // Only the user may read the private key
    assert.equal((await fs.stat(path.join(certDir, "key.pem"))).mode & 0o777, 0o600);
  }
  // Nothing in the default directory
  await assert.rejects(fs.access(path.join(tmp, "default-cert")));
});

test("HTTPPlugin: setupHttps with https: true uses the default certificate directory", async (t) => {
  const tmp = await useTmp(t);
  const defaults = isolatedDefaults(tmp);
  const { plugin: p } = plugin({ https: true }, defaults);
  await p.setup();
  const key = await fs.readFile(path.join(defaults.certRoot!, "key.pem"), "utf8");
  const cert = await fs.readFile(path.join(defaults.certRoot!, "cert.pem"), "utf8");
  assert.equal(p.httpsOptions?.key, key);
  assert.equal(p.httpsOptions?.cert, cert);
  assertLocalhostCert(cert, key, Date.now());
});

test("HTTPPlugin: setupHttps reuses the certificate, and regenerates it when older than 28 days", async (t) => {
  const tmp = await useTmp(t);
  const certDir = path.join(tmp, "cert");
  const keyPath = path.join(certDir, "key.pem");
  const certPath = path.join(certDir, "cert.pem");
  await plugin({ https: certDir }, isolatedDefaults(tmp)).plugin.setupHttps();
  const key = await fs.readFile(keyPath);
  const cert = await fs.readFile(certPath);

  // The next start reuses it, byte for byte
  let { plugin: p, log } = plugin({ https: certDir }, isolatedDefaults(tmp));
  await p.setupHttps();
  assert.deepEqual(await fs.readFile(keyPath), key);
  assert.deepEqual(await fs.readFile(certPath), cert);
  assert.equal(p.httpsOptions?.key, key.toString("utf8"));
  assert.equal(p.httpsOptions?.cert, cert.toString("utf8"));
  assert.deepEqual(log.logs, []);

  // 27 days later: still reused
  const now = Date.now();
  ({ plugin: p, log } = plugin({ https: certDir }, isolatedDefaults(tmp, { clock: () => now + 27 * DAY })));
  await p.setupHttps();
  assert.deepEqual(await fs.readFile(certPath), cert);
  assert.deepEqual(log.logs, []);

  // 29 days later: regenerated, valid from then
  const later = now + 29 * DAY;
  ({ plugin: p, log } = plugin({ https: certDir }, isolatedDefaults(tmp, { clock: () => later })));
  await p.setupHttps();
  const newKey = await fs.readFile(keyPath, "utf8");
  const newCert = await fs.readFile(certPath, "utf8");
  assert.notEqual(newCert, cert.toString("utf8"));
  assert.notEqual(newKey, key.toString("utf8"));
  assert.deepEqual(log.logsAtLevel(LogLevel.INFO), [GENERATING]);
  assertLocalhostCert(newCert, newKey, later);
  assert.equal(p.httpsOptions?.cert, newCert);
  assert.equal(p.httpsOptions?.key, newKey);
});

test("HTTPPlugin: setupHttps regenerates when either file is missing", async (t) => {
  const tmp = await useTmp(t);
  const certDir = path.join(tmp, "cert");
  await plugin({ https: certDir }, isolatedDefaults(tmp)).plugin.setupHttps();
  const key = await fs.readFile(path.join(certDir, "key.pem"), "utf8");
  await fs.rm(path.join(certDir, "cert.pem"));
  const { plugin: p, log } = plugin({ https: certDir }, isolatedDefaults(tmp));
  await p.setupHttps();
  assert.deepEqual(log.logsAtLevel(LogLevel.INFO), [GENERATING]);
  const newKey = await fs.readFile(path.join(certDir, "key.pem"), "utf8");
  const newCert = await fs.readFile(path.join(certDir, "cert.pem"), "utf8");
  assert.notEqual(newKey, key);
  // A matching pair, not the old key with a new certificate
  assertLocalhostCert(newCert, newKey, Date.now());
});

test("HTTPPlugin: setupHttps reads the *Path files, and given strings beat them", async (t) => {
  const tmp = await useTmp(t);
  await writeFiles(tmp, {
    "key.pem": "KEY FILE",
    "cert.pem": "CERT FILE",
    "ca.pem": "CA FILE",
    "cert.pfx": "PFX FILE",
  });
  const paths = {
    httpsKeyPath: path.join(tmp, "key.pem"),
    httpsCertPath: path.join(tmp, "cert.pem"),
    httpsCaPath: path.join(tmp, "ca.pem"),
    httpsPfxPath: path.join(tmp, "cert.pfx"),
  };
  let { plugin: p } = plugin({ ...paths, httpsPassphrase: "secret" }, isolatedDefaults(tmp));
  await p.setupHttps();
  assert.deepEqual(p.httpsOptions, {
    key: "KEY FILE",
    cert: "CERT FILE",
    ca: "CA FILE",
    // PFX files are binary: read as bytes
    pfx: Buffer.from("PFX FILE"),
    passphrase: "secret",
  });

  ({ plugin: p } = plugin(
    { ...paths, httpsKey: "KEY", httpsCert: "CERT", httpsCa: "CA", httpsPfx: "PFX" },
    isolatedDefaults(tmp)
  ));
  await p.setupHttps();
  assert.deepEqual(p.httpsOptions, { key: "KEY", cert: "CERT", ca: "CA", pfx: "PFX", passphrase: undefined });

  // A string wins even when its path doesn't exist (it's never read)
  const missing = path.join(tmp, "missing.pem");
  ({ plugin: p } = plugin(
    {
      httpsKey: "KEY",
      httpsKeyPath: missing,
      httpsCert: "CERT",
      httpsCertPath: missing,
      httpsCa: "CA",
      httpsCaPath: missing,
      httpsPfx: "PFX",
      httpsPfxPath: missing,
    },
    isolatedDefaults(tmp)
  ));
  await p.setupHttps();
  assert.deepEqual(p.httpsOptions, { key: "KEY", cert: "CERT", ca: "CA", pfx: "PFX", passphrase: undefined });

  // ...and beats a generated certificate too
  ({ plugin: p } = plugin({ https: path.join(tmp, "gen"), httpsCert: "CERT" }, isolatedDefaults(tmp)));
  await p.setupHttps();
  assert.equal(p.httpsOptions?.cert, "CERT");
  assert.equal(p.httpsOptions?.key, await fs.readFile(path.join(tmp, "gen", "key.pem"), "utf8"));
});

test("HTTPPlugin: setupHttps rejects when a path can't be read", async (t) => {
  const tmp = await useTmp(t);
  const missing = path.join(tmp, "missing.pem");
  for (const key of ["httpsKeyPath", "httpsCertPath", "httpsCaPath", "httpsPfxPath"] as const) {
    const { plugin: p } = plugin({ [key]: missing }, isolatedDefaults(tmp));
    await assert.rejects(p.setupHttps(), { code: "ENOENT", path: missing }, key);
    await assert.rejects(p.setup(), { code: "ENOENT" }, key);
  }
  // A directory isn't a readable file either
  const { plugin: p } = plugin({ httpsCertPath: tmp }, isolatedDefaults(tmp));
  await assert.rejects(p.setupHttps(), { code: "EISDIR" });
});

// ---------------------------------------------------------------------------
// cf object
// ---------------------------------------------------------------------------

interface CfEndpoint {
  url: string;
  hits: () => number;
}

async function useCfEndpoint(
  t: TestContext,
  respond: (res: http.ServerResponse, hit: number) => void | Promise<void>
): Promise<CfEndpoint> {
  let hits = 0;
  const url = await useServer(t, (req, res) => {
    hits++;
    void respond(res, hits);
  });
  return { url: new URL("/cf.json", url).href, hits: () => hits };
}

const FETCHED_CF = { colo: "LHR", country: "GB", city: "London", asn: 1 };

function jsonEndpoint(cf: object = FETCHED_CF) {
  return (res: http.ServerResponse, hit: number) => {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ ...cf, hit }));
  };
}

// A request as the server would hand to getRequestMeta
const fakeReq = { socket: { remoteAddress: "127.0.0.1" }, headers: {} } as unknown as http.IncomingMessage;

test("HTTPPlugin: setupCf fetches the cf object and caches it at the given path", async (t) => {
  const tmp = await useTmp(t);
  const endpoint = await useCfEndpoint(t, jsonEndpoint());
  const cfPath = path.join(tmp, "nested", "cf.json");
  const { plugin: p, log } = plugin({ cfFetch: cfPath }, isolatedDefaults(tmp, { cfFetchEndpoint: endpoint.url }));
  // Until it's fetched, the placeholder
  assert.deepEqual((await p.getRequestMeta(fakeReq)).cf, DEFAULT_CF);
  await p.setupCf();
  assert.equal(endpoint.hits(), 1);
  assert.deepEqual((await p.getRequestMeta(fakeReq)).cf, { ...FETCHED_CF, hit: 1 });
  assert.deepEqual(JSON.parse(await fs.readFile(cfPath, "utf8")), { ...FETCHED_CF, hit: 1 });
  assert.deepEqual(log.logsAtLevel(LogLevel.INFO), [CF_UPDATED]);
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), []);
  // Not the default path
  await assert.rejects(fs.access(path.join(tmp, "default-cf.json")));
});

test("HTTPPlugin: setupCf with cfFetch: true caches at the default path", async (t) => {
  const tmp = await useTmp(t);
  const endpoint = await useCfEndpoint(t, jsonEndpoint());
  const defaults = isolatedDefaults(tmp, { cfFetchEndpoint: endpoint.url });
  const { plugin: p } = plugin({ cfFetch: true }, defaults);
  await p.setupCf();
  assert.equal(endpoint.hits(), 1);
  assert.deepEqual(JSON.parse(await fs.readFile(defaults.cfPath!, "utf8")), { ...FETCHED_CF, hit: 1 });
});

test("HTTPPlugin: setupCf uses a fresh cache without fetching, and refetches after 30 days", async (t) => {
  const tmp = await useTmp(t);
  const endpoint = await useCfEndpoint(t, jsonEndpoint());
  const cfPath = path.join(tmp, "cf.json");
  const cached = { colo: "CDG", country: "FR" };
  await fs.writeFile(cfPath, JSON.stringify(cached));
  const now = Date.now();

  // 29 days later: still fresh
  let { plugin: p, log } = plugin(
    { cfFetch: cfPath },
    isolatedDefaults(tmp, { cfFetchEndpoint: endpoint.url, clock: () => now + 29 * DAY })
  );
  await p.setupCf();
  assert.equal(endpoint.hits(), 0);
  assert.deepEqual((await p.getRequestMeta(fakeReq)).cf, cached);
  assert.deepEqual(log.logs, []);

  // 31 days later: refetched and rewritten
  ({ plugin: p, log } = plugin(
    { cfFetch: cfPath },
    isolatedDefaults(tmp, { cfFetchEndpoint: endpoint.url, clock: () => now + 31 * DAY })
  ));
  await p.setupCf();
  assert.equal(endpoint.hits(), 1);
  assert.deepEqual((await p.getRequestMeta(fakeReq)).cf, { ...FETCHED_CF, hit: 1 });
  assert.deepEqual(JSON.parse(await fs.readFile(cfPath, "utf8")), { ...FETCHED_CF, hit: 1 });
  assert.deepEqual(log.logsAtLevel(LogLevel.INFO), [CF_UPDATED]);

  // A malformed cache is refetched too
  await fs.writeFile(cfPath, "{ not json");
  ({ plugin: p } = plugin({ cfFetch: cfPath }, isolatedDefaults(tmp, { cfFetchEndpoint: endpoint.url })));
  await p.setupCf();
  assert.equal(endpoint.hits(), 2);
  assert.deepEqual((await p.getRequestMeta(fakeReq)).cf, { ...FETCHED_CF, hit: 2 });
});

test("HTTPPlugin: setupCf falls back to the placeholder and warns when the fetch fails", async (t) => {
  const tmp = await useTmp(t);
  const cfPath = path.join(tmp, "cf.json");
  const failures: [string, (res: http.ServerResponse) => void][] = [
    ["not JSON", (res) => void res.end("<html>Oops</html>")],
    ["a 500", (res) => void res.writeHead(500).end("Internal Server Error")],
    ["a dropped connection", (res) => void res.socket?.destroy()],
  ];
  for (const [name, respond] of failures) {
    const endpoint = await useCfEndpoint(t, respond);
    const { plugin: p, log } = plugin({ cfFetch: cfPath }, isolatedDefaults(tmp, { cfFetchEndpoint: endpoint.url }));
    await p.setupCf();
    assert.equal(endpoint.hits(), 1, name);
    const warnings = log.logsAtLevel(LogLevel.WARN);
    assert.equal(warnings.length, 1, name);
    assert(warnings[0].startsWith(CF_WARNING), `${name}: ${warnings[0]}`);
    assert.match(warnings[0], /--no-cf-fetch/, name);
    assert.deepEqual(log.logsAtLevel(LogLevel.INFO), [], name);
    assert.deepEqual((await p.getRequestMeta(fakeReq)).cf, DEFAULT_CF, name);
    // Nothing cached, so the next start tries again
    await assert.rejects(fs.access(cfPath), name);
  }

  // Nothing listening at all
  const { plugin: p, log } = plugin({ cfFetch: cfPath }, isolatedDefaults(tmp));
  await p.setupCf();
  assert(log.logsAtLevel(LogLevel.WARN)[0]?.startsWith(CF_WARNING));
  assert.deepEqual((await p.getRequestMeta(fakeReq)).cf, DEFAULT_CF);
});

test("HTTPPlugin: setupCf never throws, even into a log that rethrows", async (t) => {
  const tmp = await useTmp(t);
  const endpoint = await useCfEndpoint(t, (res) => void res.end("not json"));
  const log = new TestLog();
  log.warn = () => {
    throw new Error("log broke");
  };
  const { plugin: p } = plugin({ cfFetch: path.join(tmp, "cf.json") }, isolatedDefaults(tmp, { cfFetchEndpoint: endpoint.url }), log);
  await p.setupCf();
  assert.deepEqual((await p.getRequestMeta(fakeReq)).cf, DEFAULT_CF);
});

test("HTTPPlugin: setupCf does nothing when fetching is off, or when a metaProvider is given", async (t) => {
  const tmp = await useTmp(t);
  const endpoint = await useCfEndpoint(t, jsonEndpoint());
  const cfPath = path.join(tmp, "cf.json");
  const fetchingDefaults = isolatedDefaults(tmp, { cfFetchEndpoint: endpoint.url, cfFetch: true });

  // Explicitly off beats the default
  await plugin({ cfFetch: false }, fetchingDefaults).plugin.setupCf();
  // A metaProvider supplies cf itself
  await plugin({ cfFetch: cfPath, metaProvider: () => ({}) }, fetchingDefaults).plugin.setupCf();
  // Default off
  await plugin({}, isolatedDefaults(tmp, { cfFetchEndpoint: endpoint.url, cfFetch: false })).plugin.setupCf();
  assert.equal(endpoint.hits(), 0);
  await assert.rejects(fs.access(cfPath));
  await assert.rejects(fs.access(fetchingDefaults.cfPath!));

  // Default on: fetches to the default path
  await plugin({}, fetchingDefaults).plugin.setupCf();
  assert.equal(endpoint.hits(), 1);
  await fs.access(fetchingDefaults.cfPath!);
});

test("HTTPPlugin: NODE_ENV=test turns the default cf fetch off", async (t) => {
  const tmp = await useTmp(t);
  const endpoint = await useCfEndpoint(t, jsonEndpoint());
  const previous = process.env.NODE_ENV;
  t.after(() => {
    if (previous === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = previous;
  });
  const defaults = { ...isolatedDefaults(tmp, { cfFetchEndpoint: endpoint.url }), cfFetch: undefined };

  process.env.NODE_ENV = "test";
  await plugin({}, defaults).plugin.setupCf();
  assert.equal(endpoint.hits(), 0);
  // ...but an explicit cfFetch still fetches
  await plugin({ cfFetch: true }, defaults).plugin.setupCf();
  assert.equal(endpoint.hits(), 1);

  process.env.NODE_ENV = "development";
  await fs.rm(defaults.cfPath!);
  await plugin({}, defaults).plugin.setupCf();
  assert.equal(endpoint.hits(), 2);
});

test("HTTPPlugin: setup doesn't fetch cf (the server starts it), and requests get the placeholder until it's done", async (t) => {
  const tmp = await useTmp(t);
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const endpoint = await useCfEndpoint(t, async (res, hit) => {
    await released;
    jsonEndpoint()(res, hit);
  });
  const { plugin: p, log } = plugin(
    { cfFetch: path.join(tmp, "cf.json") },
    isolatedDefaults(tmp, { cfFetchEndpoint: endpoint.url })
  );
  t.after(release);
  assert.deepEqual(await p.setup(), {});
  await flushTurns();
  assert.equal(endpoint.hits(), 0);
  void p.setupCf();
  // The fetch has started but not finished
  await until(() => endpoint.hits() > 0, "the cf fetch reaching the endpoint");
  assert.equal(endpoint.hits(), 1);
  assert.deepEqual((await p.getRequestMeta(fakeReq)).cf, DEFAULT_CF);
  release();
  await until(() => log.logsAtLevel(LogLevel.INFO).length > 0, "the cf update logged");
  assert.deepEqual(log.logsAtLevel(LogLevel.INFO), [CF_UPDATED]);
  assert.deepEqual((await p.getRequestMeta(fakeReq)).cf, { ...FETCHED_CF, hit: 1 });
});

// ---------------------------------------------------------------------------
// metaProvider
// ---------------------------------------------------------------------------

test("HTTPPlugin: getRequestMeta asks the metaProvider, with the request", async (t) => {
  const tmp = await useTmp(t);
  const seen: http.IncomingMessage[] = [];
  const meta = { forwardedProto: "http", realIp: "1.2.3.4", cf: { colo: "SYD" } };
  const { plugin: p } = plugin(
    {
      metaProvider: async (req) => {
        seen.push(req);
        return meta;
      },
    },
    isolatedDefaults(tmp)
  );
  assert.deepEqual(await p.getRequestMeta(fakeReq), meta);
  assert.deepEqual(seen, [fakeReq]);
  // Without one, the placeholder cf and no overrides
  assert.deepEqual(await plugin({}, isolatedDefaults(tmp)).plugin.getRequestMeta(fakeReq), { cf: DEFAULT_CF });
});

test("HTTPPlugin: a metaProvider overrides the cf object and client address headers", async (t) => {
  const remoteAddresses: (string | undefined)[] = [];
  const mf = useMiniflare(t, {
    modules: true,
    script: `export default { fetch(request) {
      return Response.json({
        cf: request.cf,
        ip: request.headers.get("cf-connecting-ip"),
        realIp: request.headers.get("x-real-ip"),
        proto: request.headers.get("x-forwarded-proto"),
        visitor: request.headers.get("cf-visitor"),
        country: request.headers.get("cf-ipcountry"),
      });
    } }`,
    metaProvider: async (req) => {
      remoteAddresses.push(req.socket.remoteAddress);
      return { forwardedProto: "http", realIp: "203.0.113.7", cf: { country: "GB", colo: "LHR" } };
    },
  });
  const server = await mf.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))));
  const { port } = server.address() as import("node:net").AddressInfo;
  const res = await fetch(`http://127.0.0.1:${port}/`, {
    headers: { "CF-Connecting-IP": "6.6.6.6", "X-Real-IP": "7.7.7.7", "Accept-Encoding": "deflate" },
  });
  const data = await res.json();
  assert.equal(data.cf.country, "GB");
  assert.equal(data.cf.colo, "LHR");
  // Not merged with the placeholder
  assert.equal(data.cf.city, undefined);
  assert.equal(data.cf.clientAcceptEncoding, "deflate");
  assert.equal(data.ip, "203.0.113.7");
  assert.equal(data.realIp, "203.0.113.7");
  assert.equal(data.proto, "http");
  assert.equal(data.visitor, '{"scheme":"http"}');
  assert.equal(data.country, "GB");
  assert.deepEqual(remoteAddresses, ["127.0.0.1"]);
});
