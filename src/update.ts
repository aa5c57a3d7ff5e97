import fs from "node:fs/promises";
import { numericCompare } from "./shared/data.js";
import type { Log } from "./shared/log.js";

const DAY = 86_400_000; /* ms */

export interface UpdateCheckOptions {
  pkg: { name: string; version: string };
  /** File holding the time of the last successful check */
  lastCheckFile: string;
  log: Log;
  now?: number;
  registry?: string;
}

/** Compares "x.y.z" versions numerically, part by part */
function compareVersions(a: string, b: string): number {
  const as = a.split(/[.-]/);
  const bs = b.split(/[.-]/);
  for (let i = 0; i < Math.max(as.length, bs.length); i++) {
    const result = numericCompare(as[i] ?? "0", bs[i] ?? "0");
    if (result !== 0) return result;
  }
  return 0;
}

/**
 * Warns if the registry has a newer version of the package, at most once a
 * day (as the `miniflare` command of Miniflare 2 did; `--no-update-check`
 * turns it off).
 */
export async function updateCheck({
  pkg,
  lastCheckFile,
  log,
  now = Date.now(),
  registry = "https://registry.npmjs.org/",
}: UpdateCheckOptions): Promise<void> {
  let lastCheck = 0;
  try {
    lastCheck = parseInt(await fs.readFile(lastCheckFile, "utf8"));
  } catch {
    // Never checked
  }
  if (now - lastCheck < DAY) return;

  const res = await fetch(`${registry}${pkg.name}/latest`, {
    headers: { Accept: "application/json" },
  });
  const registryVersion: string | undefined = (await res.json()).version;
  if (!registryVersion) return;
  await fs.writeFile(lastCheckFile, now.toString(), "utf8");

  if (compareVersions(registryVersion, pkg.version) > 0) {
    log.warn(
      `Miniflare ${registryVersion} is available, but you're using ${pkg.version}. Update for improved compatibility with Cloudflare Workers.`
    );
    const registryMajor = registryVersion.split(".")[0];
    const pkgMajor = pkg.version.split(".")[0];
    if (numericCompare(registryMajor, pkgMajor) > 0) {
      log.warn(
        `${registryVersion} includes breaking changes.Make sure you check the changelog before upgrading.`
      );
    }
  }
}
