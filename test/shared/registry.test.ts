import assert from "node:assert/strict";
import { test } from "node:test";
import { HostRegistry, RegistryKey } from "../../src/shared/registry.js";

class Counter {
  resets = 0;
  reset(): void {
    this.resets++;
  }
}

test("HostRegistry: get: creates an entry once per key", () => {
  let created = 0;
  const key = new RegistryKey("counter", () => (created++, new Counter()));
  const registry = new HostRegistry();
  const first = registry.get(key);
  assert.ok(first instanceof Counter);
  assert.equal(registry.get(key), first);
  assert.equal(created, 1);
  // Another registry (another host) has its own
  assert.notEqual(new HostRegistry().get(key), first);
});

test("HostRegistry: get: keys with the same name are distinct", () => {
  const a = new RegistryKey("same", () => new Counter());
  const b = new RegistryKey("same", () => new Counter());
  const registry = new HostRegistry();
  assert.notEqual(registry.get(a), registry.get(b));
});

test("HostRegistry: reset: resets every entry, keeping it", () => {
  const a = new RegistryKey("a", () => new Counter());
  const b = new RegistryKey("b", () => new Counter());
  const registry = new HostRegistry();
  const counterA = registry.get(a);
  const counterB = registry.get(b);
  registry.reset();
  registry.reset();
  assert.equal(counterA.resets, 2);
  assert.equal(counterB.resets, 2);
  assert.equal(registry.get(a), counterA);
});
