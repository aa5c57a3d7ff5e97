import assert from "node:assert/strict";
import { MiniflareError } from "../../src/shared/errors.js";

/** Asserts `promise` rejects with a MiniflareError of `type` and `code` */
export async function assertRejectsMiniflare(
  promise: Promise<unknown>,
  type: new (...args: any[]) => MiniflareError,
  code: string | number,
  message?: string | RegExp
): Promise<MiniflareError> {
  let caught: unknown;
  try {
    await promise;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof type, `expected ${type.name}, got ${caught}`);
  const error = caught as MiniflareError;
  assert.equal(error.code, code);
  assert.equal(error.name, `${type.name} [${code}]`);
  if (typeof message === "string") assert.equal(error.message, message);
  else if (message) assert.match(error.message, message);
  return error;
}
