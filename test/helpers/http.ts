// Helpers shared by the test/standards tests: the HTTP wrappers (Request,
// Response, Body, fetch, FormData), and messages the crypto, streams and
// timers tests assert too
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { TestContext } from "node:test";
import { InputGate, OutputGate } from "../../src/shared/sync/gate.js";
import {
  type BodyInit,
  type Request,
  type Response,
  _isByteStream,
  withStringFormDataFiles,
} from "../../src/standards/http.js";
import { deferred, flushTurns, within } from "./sync.js";

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/** The exact message of the global-scope I/O restriction (spec §7) */
export const IN_REQUEST_MESSAGE =
  "Some functionality, such as asynchronous I/O (fetch, Cache API, KV), " +
  "timeouts (setTimeout, setInterval), and generating random values " +
  "(crypto.getRandomValues, crypto.subtle.generateKey), can only be " +
  "performed while handling a request.";

/** TypeError message for a string chunk written to a byte stream */
export const STRING_CHUNK_MESSAGE =
  "This TransformStream is being used as a byte stream, " +
  "but received a string on its writable side. " +
  "If you wish to write a string, you'll probably want to " +
  "explicitly UTF-8-encode it with TextEncoder.";

/** TypeError message for a non-buffer chunk written to a byte stream */
export const NON_ARRAY_CHUNK_MESSAGE =
  "This TransformStream is being used as a byte stream, " +
  "but received an object of non-ArrayBuffer/ArrayBufferView " +
  "type on its writable side.";

// ---------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------

/** A `cf` object with a nested value, to check it's copied deeply */
export const cf = { country: "GB", nested: { a: [1, 2] } };

export const utf8Encode = (s: string) => new TextEncoder().encode(s);
export const utf8Decode = (a?: Uint8Array): string => new TextDecoder().decode(a);

/** A stream that enqueues `chunk` (UTF-8 encoded) then closes */
export function singleChunkStream(
  chunk: string,
  type?: "bytes"
): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    type,
    start(controller) {
      controller.enqueue(utf8Encode(chunk));
      controller.close();
    },
  } as UnderlyingDefaultSource<Uint8Array>);
}

/** Reads the first chunk of `body` with a BYOB reader, decoded as UTF-8 */
export async function byobReadFirstChunk(
  body: ReadableStream<Uint8Array> | null
): Promise<string> {
  assert(body);
  const reader = body.getReader({ mode: "byob" });
  const result = await reader.read(new Uint8Array(32));
  return utf8Decode(result.value);
}

/** Reads all of `stream`, decoded as UTF-8 */
export async function streamText(stream: ReadableStream<Uint8Array> | null): Promise<string> {
  assert(stream);
  let text = "";
  const decoder = new TextDecoder();
  for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
    text += decoder.decode(chunk, { stream: true });
  }
  return text + decoder.decode();
}

/** Content-Type of the bodies `multipartFileLines` builds */
export const MULTIPART_CONTENT_TYPE = 'multipart/form-data;boundary="boundary"';

/**
 * Lines (to join with CRLF) of a multipart body with boundary "boundary"
 * holding one text/plain file field "key"
 */
export function multipartFileLines(
  filename = "test.txt",
  contents = "file contents",
  extraHeaders: string[] = []
): string[] {
  return [
    "--boundary",
    `Content-Disposition: form-data; name="key"; filename="${filename}"`,
    ...extraHeaders,
    "Content-Type: text/plain",
    "",
    contents,
    "--boundary--",
  ];
}

// ---------------------------------------------------------------------------
// Body behaviour shared by Request and Response
// ---------------------------------------------------------------------------

/** Makes a Request (POST) or Response with `body` */
export type BodyFactory = (body: BodyInit | null) => Request | Response;

/** Checks run by both the Request and the Response tests */
export const bodyChecks = {
  /** Getting each of `properties` of `object` (a `klass`) throws */
  unimplementedProperties(klass: string, object: object, properties: string[]): void {
    for (const property of properties) {
      assert.throws(() => (object as Record<string, unknown>)[property], {
        name: "Error",
        message: new RegExp(
          `^Failed to get the '${property}' property on '${klass}': the property is not implemented\\.$`
        ),
      });
    }
  },

  /** `headers` (forbidden by fetch) can be set, on `message` and its clone */
  forbiddenHeadersMutable(message: Request | Response, headers: string[]): void {
    for (const header of headers) {
      message.headers.set(header, "value");
      assert.equal(message.headers.get(header), "value");
    }
    const clone = message.clone();
    for (const header of headers) {
      assert.equal(clone.headers.get(header), "value");
      clone.headers.set(header, "value2");
      assert.equal(clone.headers.get(header), "value2");
    }
  },

  /** Buffer bodies are copied, not detached, so can be used again */
  async doesntDetachBuffers(make: BodyFactory): Promise<void> {
    const buffer = utf8Encode("test1").buffer;
    const array = utf8Encode("test2");
    for (const [body, text] of [[buffer, "test1"], [array, "test2"]] as const) {
      assert.equal(await streamText(make(body).body), text);
      assert.equal(await streamText(make(body).body), text);
    }
    assert.equal(buffer.byteLength, 5);
    assert.equal(array.byteLength, 5);
  },

  /** Regular and byte stream bodies become byte streams, clones too */
  async clonesStreamBodies(make: BodyFactory): Promise<void> {
    for (const [chunk, type] of [["chunk1", undefined], ["chunk2", "bytes"]] as const) {
      const original = make(singleChunkStream(chunk, type));
      const clone = original.clone();
      assert(original.body !== null && clone.body !== null);
      assert(_isByteStream(original.body));
      assert(_isByteStream(clone.body));
      assert.equal(await original.text(), chunk);
      assert.equal(await clone.text(), chunk);
    }
  },

  /** Clones parse FormData files as Files, unless withStringFormDataFiles */
  async cloneRetainsFormDataFileOption(make: BodyFactory): Promise<void> {
    const formData = new FormData();
    formData.append("file", new File(["test"], "test.txt"));

    let parsed = await make(formData).clone().formData();
    const file = parsed.get("file");
    assert(file instanceof File);
    assert.equal(await file.text(), "test");
    assert.equal(file.name, "test.txt");

    parsed = await withStringFormDataFiles(make(formData)).clone().formData();
    assert.equal(parsed.get("file"), "test");
  },

  /** BYOB readers work on a body and its clone, whichever is read first */
  async byobReadsWhenCloning(make: BodyFactory): Promise<void> {
    let original = make("body");
    let clone = original.clone();
    assert.equal(await byobReadFirstChunk(original.body), "body");
    assert.equal(await byobReadFirstChunk(clone.body), "body");

    original = make("body");
    clone = original.clone();
    assert.equal(await byobReadFirstChunk(clone.body), "body");
    assert.equal(await byobReadFirstChunk(original.body), "body");
  },

  /** Cloning gives the original a new body stream */
  async cloneResetsBodyStream(make: BodyFactory): Promise<void> {
    const buffer = new ArrayBuffer(10);
    const original = make(buffer);
    const bodyStream = original.body;
    assert(bodyStream instanceof ReadableStream);
    const clone = original.clone();
    assert.deepEqual(await clone.arrayBuffer(), buffer);
    assert(original.body);
    for await (const chunk of original.body as unknown as AsyncIterable<unknown>) {
      assert(chunk instanceof Uint8Array);
    }
    assert.notEqual(bodyStream, original.body);
  },
};

// ---------------------------------------------------------------------------
// Input gating
// ---------------------------------------------------------------------------

/**
 * An input gate that tells when something first waits on it while it's
 * closed: the moment a test knows the code under test is being held back
 */
export class WatchedInputGate extends InputGate {
  readonly #blocked = deferred();
  /** Resolves when waitForOpen() is first called with the gate closed */
  readonly blocked = this.#blocked.promise;

  override waitForOpen(): Promise<void> {
    if (!this.isOpen) this.#blocked.resolve();
    return super.waitForOpen();
  }
}

/** An output gate that tells when something first waits on it */
export class WatchedOutputGate extends OutputGate {
  readonly #waiting = deferred();
  /** Resolves when waitForOpen() is first called */
  readonly waiting = this.#waiting.promise;

  override waitForOpen(): Promise<void> {
    this.#waiting.resolve();
    return super.waitForOpen();
  }
}

/**
 * Runs `closure` inside an input gate that stays closed until the closure
 * has come to wait on it (and a few more turns, in which it could wrongly
 * go on), checking it only resolves once the gate has been reopened
 */
export async function waitsForInputGate<T>(closure: () => Promise<T>): Promise<T> {
  const inputGate = new WatchedInputGate();
  const open = deferred();
  const events: string[] = [];
  const promise = inputGate.runWith(async () => {
    void inputGate.runWithClosed(() => open.promise);
    const result = await closure();
    events.push("resolved");
    return result;
  });
  // Resolving first means the gate was ignored: the order below shows it
  await within(Promise.race([inputGate.blocked, promise]), "waiting on the closed input gate");
  await flushTurns();
  events.push("opened");
  open.resolve();
  const result = await promise;
  assert.deepEqual(events, ["opened", "resolved"]);
  return result;
}

/** Checks `closure` resolves even though the current input gate is closed */
export async function ignoresInputGate(closure: () => Promise<unknown>): Promise<void> {
  const inputGate = new InputGate();
  const open = deferred();
  await inputGate.runWith(async () => {
    void inputGate.runWithClosed(() => open.promise);
    await closure();
  });
  open.resolve();
}

// ---------------------------------------------------------------------------
// Upstream servers
// ---------------------------------------------------------------------------

export type Listener = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** A local HTTP server on 127.0.0.1 and a random port */
export async function startServer(
  listener: Listener
): Promise<{ url: URL; close: () => Promise<void> }> {
  const server = http.createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return { url: new URL(`http://127.0.0.1:${port}/`), close };
}

/** A local HTTP server closed after the test, returning its `/` URL */
export async function useServer(t: TestContext, listener: Listener): Promise<URL> {
  const { url, close } = await startServer(listener);
  t.after(close);
  return url;
}
