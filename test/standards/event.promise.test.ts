import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { LogLevel } from "../../src/shared/log.js";
import {
  PromiseRejectionEvent,
  ServiceWorkerGlobalScope,
  kDispose,
} from "../../src/standards/event.js";
import { TestLog } from "../helpers/log.js";

// Compiled module paths, for child processes that exercise real rejections
const eventModule = fileURLToPath(new URL("../../src/standards/event.js", import.meta.url));
const logModule = fileURLToPath(new URL("../../src/shared/log.js", import.meta.url));

type ProcessEvent = "unhandledRejection" | "rejectionHandled";

function count(name: ProcessEvent): number {
  return process.listenerCount(name);
}
function first(name: ProcessEvent): (...args: any[]) => void {
  return process.listeners(name as "unhandledRejection")[0] as (...args: any[]) => void;
}
/** A rejected promise that's been handled, so it doesn't upset the test runner */
function handledRejection(reason: unknown): Promise<never> {
  const promise = Promise.reject(reason);
  promise.catch(() => {});
  return promise;
}

function useScope(logUnhandledRejections?: boolean, modules?: boolean) {
  const log = new TestLog();
  const globalScope = new ServiceWorkerGlobalScope(log, {}, {}, modules, logUnhandledRejections);
  return { log, globalScope };
}

function runChild(script: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const prelude = [
    `const { ServiceWorkerGlobalScope, kDispose } = await import(${JSON.stringify(eventModule)});`,
    `const { Log, LogLevel } = await import(${JSON.stringify(logModule)});`,
  ].join("\n");
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--input-type=module", "-e", `${prelude}\n${script}`],
      { env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" } },
      (error, stdout, stderr) => {
        resolve({ code: error ? (error.code as number) ?? 1 : 0, stdout, stderr });
      }
    );
  });
}

test("ServiceWorkerGlobalScope: doesn't register process listeners unless needed", () => {
  const before = [count("unhandledRejection"), count("rejectionHandled")];
  const { globalScope, log } = useScope();
  globalScope.addEventListener("fetch", () => {});
  globalScope.addEventListener("scheduled", () => {});
  // Null listeners don't count
  globalScope.addEventListener("unhandledrejection", null);
  globalScope.addEventListener("rejectionhandled", null);
  assert.deepEqual([count("unhandledRejection"), count("rejectionHandled")], before);
  assert.deepEqual(log.logsAtLevel(LogLevel.VERBOSE), []);
});
test("ServiceWorkerGlobalScope: registers process unhandledRejection listener while worker listens", () => {
  const before = count("unhandledRejection");
  const { globalScope, log } = useScope();
  const listener1 = () => {};
  const listener2 = () => {};
  globalScope.addEventListener("unhandledrejection", listener1);
  assert.equal(count("unhandledRejection"), before + 1);
  assert.deepEqual(log.logsAtLevel(LogLevel.VERBOSE), ["Adding process unhandledRejection listener..."]);
  // Registered at the front, so it runs before other listeners
  const registered = first("unhandledRejection");
  globalScope.addEventListener("unhandledrejection", listener2);
  assert.equal(count("unhandledRejection"), before + 1);
  assert.equal(first("unhandledRejection"), registered);

  log.clear();
  globalScope.removeEventListener("unhandledrejection", listener1);
  assert.equal(count("unhandledRejection"), before + 1);
  assert.deepEqual(log.logsAtLevel(LogLevel.VERBOSE), []);
  globalScope.removeEventListener("unhandledrejection", listener2);
  assert.equal(count("unhandledRejection"), before);
  assert.equal(process.listeners("unhandledRejection").includes(registered as any), false);
  assert.deepEqual(log.logsAtLevel(LogLevel.VERBOSE), ["Removing process unhandledRejection listener..."]);
  // Removing again is a no-op
  globalScope.removeEventListener("unhandledrejection", listener2);
  assert.equal(log.logsAtLevel(LogLevel.VERBOSE).length, 1);
});
test("ServiceWorkerGlobalScope: registers process rejectionHandled listener while worker listens", () => {
  const before = count("rejectionHandled");
  const { globalScope, log } = useScope();
  const listener = () => {};
  globalScope.addEventListener("rejectionhandled", listener);
  assert.equal(count("rejectionHandled"), before + 1);
  assert.deepEqual(log.logsAtLevel(LogLevel.VERBOSE), ["Adding process rejectionHandled listener..."]);
  globalScope.removeEventListener("rejectionhandled", listener);
  assert.equal(count("rejectionHandled"), before);
  assert.deepEqual(log.logsAtLevel(LogLevel.VERBOSE), [
    "Adding process rejectionHandled listener...",
    "Removing process rejectionHandled listener...",
  ]);
});
test("ServiceWorkerGlobalScope: registers promise listeners in modules mode too", () => {
  const before = count("unhandledRejection");
  const { globalScope, log } = useScope(false, true);
  globalScope.addEventListener("unhandledrejection", () => {});
  assert.equal(count("unhandledRejection"), before + 1);
  assert.deepEqual(log.logsAtLevel(LogLevel.WARN), []);
  globalScope[kDispose]();
  assert.equal(count("unhandledRejection"), before);
});
test("ServiceWorkerGlobalScope: dispatches unhandledrejection events to worker listeners", () => {
  const { globalScope, log } = useScope();
  const events: PromiseRejectionEvent[] = [];
  globalScope.addEventListener("unhandledrejection", (e) => {
    events.push(e);
    e.preventDefault();
  });
  const reason = new Error("boom");
  const promise = handledRejection(reason);
  first("unhandledRejection")(reason, promise);
  assert.equal(events.length, 1);
  assert.ok(events[0] instanceof PromiseRejectionEvent);
  assert.equal(events[0].type, "unhandledrejection");
  assert.equal(events[0].reason, reason);
  assert.equal(events[0].promise, promise);
  assert.equal(events[0].cancelable, true);
  // Cancelled, so nothing logged and the listener stays registered
  assert.deepEqual(log.errors, []);
  assert.equal(first("unhandledRejection"), first("unhandledRejection"));
  const registered = first("unhandledRejection");
  globalScope[kDispose]();
  assert.equal(process.listeners("unhandledRejection").includes(registered as any), false);
});
test("ServiceWorkerGlobalScope: dispatches rejectionhandled events to worker listeners", () => {
  const { globalScope } = useScope();
  const events: PromiseRejectionEvent[] = [];
  globalScope.addEventListener("rejectionhandled", (e) => events.push(e));
  const promise = handledRejection(new Error("boom"));
  first("rejectionHandled")(promise);
  assert.equal(events.length, 1);
  assert.ok(events[0] instanceof PromiseRejectionEvent);
  assert.equal(events[0].type, "rejectionhandled");
  assert.equal(events[0].promise, promise);
  assert.equal(events[0].reason, undefined);
  globalScope[kDispose]();
});
test("ServiceWorkerGlobalScope: logs uncancelled unhandled rejections if logUnhandledRejections", () => {
  const before = count("unhandledRejection");
  const { globalScope, log } = useScope(true);
  // Registered immediately, with no worker listeners
  assert.equal(count("unhandledRejection"), before + 1);
  assert.deepEqual(log.logsAtLevel(LogLevel.VERBOSE), ["Adding process unhandledRejection listener..."]);
  const listener = first("unhandledRejection");

  const reason = new Error("boom");
  listener(reason, handledRejection(reason));
  assert.equal(log.errors.length, 1);
  assert.match(log.errors[0].stack!, /^Unhandled Promise Rejection: Error: boom\n/);
  assert.equal(log.errors[0].message, "boom");
  assert.match(log.logsAtLevel(LogLevel.ERROR)[0], /^Unhandled Promise Rejection: Error: boom/);

  // Adding then removing a worker listener doesn't unregister it
  const workerListener = () => {};
  globalScope.addEventListener("unhandledrejection", workerListener);
  globalScope.removeEventListener("unhandledrejection", workerListener);
  assert.equal(count("unhandledRejection"), before + 1);

  // Cancelled rejections aren't logged
  globalScope.addEventListener("unhandledrejection", (e) => e.preventDefault());
  listener(reason, handledRejection(reason));
  assert.equal(log.errors.length, 1);

  log.clear();
  globalScope[kDispose]();
  assert.equal(count("unhandledRejection"), before);
  assert.deepEqual(log.logsAtLevel(LogLevel.VERBOSE), ["Removing process unhandledRejection listener..."]);
});
test("ServiceWorkerGlobalScope: logs non-error unhandled rejection reasons as is", () => {
  const { globalScope, log } = useScope(true);
  first("unhandledRejection")("reason", handledRejection("reason"));
  assert.deepEqual(log.errors, ["reason" as any]);
  globalScope[kDispose]();
});
test("ServiceWorkerGlobalScope: re-raises uncancelled unhandled rejections, removing listener", async () => {
  // Runs in a child process: the re-raised rejection is a real one
  const { code, stdout } = await runChild(`
    const messages = [];
    const log = new (class extends Log { log(m) { messages.push(m); } })(LogLevel.VERBOSE);
    const scope = new ServiceWorkerGlobalScope(log, {}, {});
    let events = 0;
    scope.addEventListener("unhandledrejection", () => events++);
    const reason = new Error("boom");
    const original = Promise.reject(reason);
    original.catch(() => {});
    const seen = [];
    // Registered after the scope's listener, so it sees both rejections
    const reraised = new Promise((resolve) => process.on("unhandledRejection", (r, p) => resolve(seen.push(p))));
    process.listeners("unhandledRejection")[0](reason, original);
    console.log("events:" + events);
    console.log("count:" + process.listenerCount("unhandledRejection"));
    await reraised;
    console.log("reraised:" + seen.length + ":" + (seen[0] !== original) + ":" + (seen[0] instanceof Promise));
    console.log("events:" + events);
    console.log(messages.join("|"));
  `);
  assert.equal(code, 0);
  assert.equal(
    stdout,
    [
      "events:1",
      "count:1",
      "reraised:1:true:true",
      "events:1",
      "[mf:vrb] Adding process unhandledRejection listener...|[mf:vrb] Removing process unhandledRejection listener...",
      "",
    ].join("\n")
  );
});
test("kDispose: removes all process listeners", () => {
  const before = [count("unhandledRejection"), count("rejectionHandled")];
  const { globalScope, log } = useScope(true);
  globalScope.addEventListener("unhandledrejection", () => {});
  globalScope.addEventListener("rejectionhandled", () => {});
  assert.deepEqual([count("unhandledRejection"), count("rejectionHandled")], [before[0] + 1, before[1] + 1]);
  log.clear();
  globalScope[kDispose]();
  assert.deepEqual([count("unhandledRejection"), count("rejectionHandled")], before);
  assert.deepEqual(log.logsAtLevel(LogLevel.VERBOSE), [
    "Removing process unhandledRejection listener...",
    "Removing process rejectionHandled listener...",
  ]);
  // Disposing again is a no-op
  log.clear();
  globalScope[kDispose]();
  assert.deepEqual(log.logsAtLevel(LogLevel.VERBOSE), []);
  // Listeners can be re-registered after disposal
  globalScope.addEventListener("unhandledrejection", () => {});
  assert.equal(count("unhandledRejection"), before[0] + 1);
  globalScope[kDispose]();
  assert.equal(count("unhandledRejection"), before[0]);
});

// End-to-end with real rejections in a separate process (the test runner
// treats unhandled rejections in this process as failures)

test("ServiceWorkerGlobalScope: cancelled real unhandled rejection doesn't crash process", async () => {
  const { code, stdout } = await runChild(`
    const scope = new ServiceWorkerGlobalScope(new Log(LogLevel.NONE), {}, {});
    const unhandled = new Promise((resolve) => scope.addEventListener("unhandledrejection", (e) => {
      console.log("unhandled:" + e.reason.message + ":" + (e.promise instanceof Promise));
      e.preventDefault();
      resolve();
    }));
    const handled = new Promise((resolve) => scope.addEventListener("rejectionhandled", (e) => {
      console.log("handled:" + (e.promise === promise));
      resolve();
    }));
    const promise = Promise.reject(new Error("boom"));
    await unhandled;
    promise.catch(() => {});
    await handled;
    scope[kDispose]();
    console.log("done");
  `);
  assert.equal(code, 0);
  assert.equal(stdout, "unhandled:boom:true\nhandled:true\ndone\n");
});
test("ServiceWorkerGlobalScope: uncancelled real unhandled rejection crashes process", async () => {
  const { code, stdout, stderr } = await runChild(`
    const scope = new ServiceWorkerGlobalScope(new Log(LogLevel.NONE), {}, {});
    scope.addEventListener("unhandledrejection", (e) => {
      console.log("unhandled:" + e.reason.message);
    });
    Promise.reject(new Error("boom"));
    // Node handles unhandled rejections before the next macrotask
    await new Promise((resolve) => setImmediate(resolve));
    console.log("survived");
  `);
  assert.notEqual(code, 0);
  assert.equal(stdout, "unhandled:boom\n");
  assert.match(stderr, /Error: boom/);
});
test("ServiceWorkerGlobalScope: logged real unhandled rejection doesn't crash process", async () => {
  const { code, stdout } = await runChild(`
    const log = new Log(LogLevel.ERROR);
    const scope = new ServiceWorkerGlobalScope(log, {}, {}, false, true);
    Promise.reject(new Error("boom"));
    // Node handles unhandled rejections before the next macrotask
    await new Promise((resolve) => setImmediate(resolve));
    scope[kDispose]();
    console.log("survived");
  `);
  assert.equal(code, 0);
  assert.match(stdout, /^\[mf:err\] Unhandled Promise Rejection: Error: boom\n/);
  assert.match(stdout, /survived\n$/);
});
