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

/**
 * Compares semver versions: "x.y.z" numerically, then a release above any
 * of its pre-releases ("2.14.4" > "2.14.4-rc.1"), then pre-release parts
 */
export function _compareVersions(a: string, b: string): number {
  const [aCore, aPre] = splitVersion(a);
  const [bCore, bPre] = splitVersion(b);
  for (let i = 0; i < 3; i++) {
    const result = numericCompare(aCore[i] ?? "0", bCore[i] ?? "0");
    if (result !== 0) return result;
  }
  if (aPre === undefined || bPre === undefined) {
    return aPre === bPre ? 0 : aPre === undefined ? 1 : -1;
  }
  return numericCompare(aPre, bPre);
}

function splitVersion(version: string): [core: string[], pre?: string] {
  const dash = version.indexOf("-");
  const core = dash === -1 ? version : version.substring(0, dash);
  const pre = dash === -1 ? undefined : version.substring(dash + 1);
  return [core.split("."), pre];
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

  if (_compareVersions(registryVersion, pkg.version) > 0) {
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
