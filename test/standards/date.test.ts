import assert from "node:assert/strict";
import { test } from "node:test";
import { RequestContext } from "../../src/shared/context.js";
import { createDate } from "../../src/standards/date.js";
import { timeMovesOn } from "../helpers/sync.js";

test("Date: uses regular Date if actual time requested", () => {
  assert.equal(createDate(true), Date);
});
test("Date: new Date() returns fixed time if no parameters provided", async () => {
  const DateImpl = createDate();
  const ctx = new RequestContext();
  await ctx.runWith(async () => {
    const previous = new DateImpl().getTime();
    assert.equal(previous, ctx.currentTime);
    await timeMovesOn(previous);
    assert.equal(new DateImpl().getTime(), previous);
    ctx.advanceCurrentTime();
    assert.notEqual(new DateImpl().getTime(), previous);
    assert.equal(new DateImpl().getTime(), ctx.currentTime);
  });

  // Outside a request context, real time is used
  const previous = new DateImpl().getTime();
  await timeMovesOn(previous);
  assert.notEqual(new DateImpl().getTime(), previous);
});
test("Date: new Date() accepts regular constructor parameters", () => {
  const DateImpl = createDate();
  assert.equal(new DateImpl(1000).getTime(), 1000);
  assert.equal(new DateImpl("2000-01-01T00:00:00.000Z").getTime(), 946684800000);
  assert.equal(new DateImpl(2000, 0, 1).getFullYear(), 2000);
  new RequestContext().runWith(() => {
    assert.equal(new DateImpl(1000).getTime(), 1000);
  });
});
test("Date: new Date() passes instanceof checks", () => {
  const DateImpl = createDate();
  assert.notEqual(DateImpl, Date);
  assert(new DateImpl() instanceof Date);
  assert(new Date() instanceof DateImpl);
  assert.equal(DateImpl.prototype, Date.prototype);
});
test("Date: Date.now() returns fixed time", async () => {
  const DateImpl = createDate();
  const ctx = new RequestContext();
  await ctx.runWith(async () => {
    const previous = DateImpl.now();
    await timeMovesOn(previous);
    assert.equal(DateImpl.now(), previous);
    ctx.advanceCurrentTime();
    assert.notEqual(DateImpl.now(), previous);
  });

  const previous = DateImpl.now();
  await timeMovesOn(previous);
  assert.notEqual(DateImpl.now(), previous);
});
test("Date: other static methods are unchanged", () => {
  const DateImpl = createDate();
  assert.equal(DateImpl.UTC(2000, 0, 1), Date.UTC(2000, 0, 1));
  assert.equal(DateImpl.parse("2000-01-01T00:00:00.000Z"), 946684800000);
});
test("Date: subclasses use fixed time", async () => {
  const DateImpl = createDate();
  class MyDate extends DateImpl {}
  const ctx = new RequestContext();
  await ctx.runWith(async () => {
    await timeMovesOn(ctx.currentTime);
    const date = new MyDate();
    assert(date instanceof MyDate);
    assert.equal(date.getTime(), ctx.currentTime);
  });
});
