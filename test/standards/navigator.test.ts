import assert from "node:assert/strict";
import { test } from "node:test";
import { Navigator } from "../../src/standards/navigator.js";

test("Navigator: userAgent is Cloudflare-Workers", () => {
  assert.equal(new Navigator().userAgent, "Cloudflare-Workers");
});
