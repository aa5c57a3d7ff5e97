// Child process for the crash test in storage.test.ts (check 13). Opens a
// Durable Object's storage on files, as the plugin does (with a journal),
// then commits 128-key batches one after another until it is killed, each
// batch holding the next generation number. After each commit it prints
// "committed <generation>", so the parent knows which were acknowledged.
//
//   node crash-child.js <root> put|transaction [split]
//
// With "split", the backend writes a batch's entries in two halves and prints
// "half" in between, so the parent can kill it while the files hold a mix of
// old and new entries (FileStorage#putMany promises no atomicity of its own).
import type { StoredValueMeta } from "../../../src/shared/storage.js";
import { DurableObjectStorage } from "../../../src/plugins/durable-objects/storage.js";
import { FileStorage } from "../../../src/storage/file.js";

const [root, mode, split] = process.argv.slice(2);
if (root === undefined || (mode !== "put" && mode !== "transaction")) {
  console.error("usage: crash-child.js <root> put|transaction [split]");
  process.exit(2);
}

class SplitFileStorage extends FileStorage {
  async putMany<Meta = unknown>(data: [key: string, value: StoredValueMeta<Meta>][]): Promise<void> {
    if (split !== "split" || data.length < 2) return super.putMany(data);
    const half = data.length >> 1;
    await super.putMany(data.slice(0, half));
    process.stdout.write("half\n");
    await super.putMany(data.slice(half));
  }
}

const keys = Array.from({ length: 128 }, (_, i) => `key${String(i).padStart(3, "0")}`);
// Large enough that a commit takes a while, small enough for the value limit
const padding = "x".repeat(2048);

const storage = new DurableObjectStorage(new SplitFileStorage(root), { journal: true });
// Carry on from what an earlier (killed) child left
const current = (await storage.get(keys[0])) as { generation: number } | undefined;
let generation = current === undefined ? 0 : current.generation + 1;

for (;; generation++) {
  const entries = Object.fromEntries(keys.map((key) => [key, { generation, key, padding }]));
  if (mode === "put") {
    await storage.put(entries);
  } else {
    await storage.transaction(async (txn) => {
      // Read before writing, as a real transaction would
      await txn.get(keys[0]);
      for (const key of keys) await txn.put(key, entries[key]);
    });
  }
  process.stdout.write(`committed ${generation}\n`);
}
