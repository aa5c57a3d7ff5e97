import assert from "node:assert/strict";
import { test } from "node:test";
import { DurableObjectId, DurableObjectState } from "../../../src/plugins/durable-objects/namespace.js";
import {
  DurableObjectRegistry,
  idFromObjectKey,
  objectKey,
} from "../../../src/plugins/durable-objects/registry.js";
import { DurableObjectStorage } from "../../../src/plugins/durable-objects/storage.js";
import { MemoryStorage } from "../../../src/storage/memory.js";

const HEX = "a".repeat(64);

function stateFor(objectName: string, hexId: string): DurableObjectState {
  return new DurableObjectState(new DurableObjectId(objectName, hexId), new DurableObjectStorage(new MemoryStorage()));
}

test("DurableObjectRegistry: objectKey: binding and hex id, and back", () => {
  const key = objectKey(new DurableObjectId("COUNTER", HEX, "name"));
  assert.equal(key, `COUNTER:${HEX}`);
  const id = idFromObjectKey(key);
  assert.equal(id.toString(), HEX);
  assert.equal(idFromObjectKey("A:B:" + HEX).toString(), HEX);
});

test("DurableObjectRegistry: states: deleteState only removes the given state", () => {
  const registry = new DurableObjectRegistry();
  const key = `COUNTER:${HEX}`;
  const state = stateFor("COUNTER", HEX);
  registry.setState(key, state);
  registry.deleteState(key, stateFor("COUNTER", HEX));
  assert.equal(registry.getState(key), state);
  registry.deleteState(key, state);
  assert.equal(registry.getState(key), undefined);
});

test("DurableObjectRegistry: ids: of one binding, in construction order", () => {
  const registry = new DurableObjectRegistry();
  const other = "b".repeat(64);
  registry.setState(`A:${other}`, stateFor("A", other));
  registry.setState(`B:${HEX}`, stateFor("B", HEX));
  registry.setState(`A:${HEX}`, stateFor("A", HEX));
  assert.deepEqual(registry.ids("A").map(String), [other, HEX]);
  assert.deepEqual(registry.ids("C"), []);
});

test("DurableObjectRegistry: reset: forgets states and storages", () => {
  const registry = new DurableObjectRegistry();
  const key = `COUNTER:${HEX}`;
  const state = stateFor("COUNTER", HEX);
  registry.setState(key, state);
  registry.setStorage(key, state.storage);
  registry.reset();
  assert.equal(registry.getState(key), undefined);
  assert.equal(registry.getStorage(key), undefined);
  assert.deepEqual([...registry.storages()], []);
});
