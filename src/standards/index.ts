// Importing this module applies Miniflare 2's process-wide patches
// (ReadableStream#tee, ReadableStreamBYOBReader#readAtLeast,
// AbortSignal.timeout, Headers#getAll) as a side effect of its imports.
export * from "./crypto.js";
export * from "./date.js";
export * from "./domexception.js";
export * from "./encoding.js";
export * from "./event.js";
export * from "./fetch.js";
export * from "./http.js";
export * from "./navigator.js";
export * from "./streams.js";
export * from "./timers.js";
export * from "./websocket.js";
