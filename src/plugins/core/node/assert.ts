/** `node:assert` for `nodejs_compat` */
import assert from "node:assert";

export const assertModule = {
  default: assert,
  AssertionError: assert.AssertionError,
  deepEqual: assert.deepEqual,
  deepStrictEqual: assert.deepStrictEqual,
  doesNotMatch: assert.doesNotMatch,
  doesNotReject: assert.doesNotReject,
  doesNotThrow: assert.doesNotThrow,
  equal: assert.equal,
  fail: assert.fail,
  ifError: assert.ifError,
  match: assert.match,
  notDeepEqual: assert.notDeepEqual,
  notDeepStrictEqual: assert.notDeepStrictEqual,
  notEqual: assert.notEqual,
  notStrictEqual: assert.notStrictEqual,
  ok: assert.ok,
  rejects: assert.rejects,
  strict: assert.strict,
  strictEqual: assert.strictEqual,
  throws: assert.throws,
};
