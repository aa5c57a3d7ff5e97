import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { TestContext } from "node:test";

/** A fresh temporary directory, removed after the test */
export async function useTmp(t: TestContext): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "miniflare-test-"));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `files` (relative path → contents) into `dir` */
export async function writeFiles(
  dir: string,
  files: Record<string, string | Uint8Array>
): Promise<void> {
  for (const [name, contents] of Object.entries(files)) {
    const file = path.join(dir, name);
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, contents);
  }
}
