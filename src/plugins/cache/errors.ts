import { MiniflareError } from "../../shared/errors.js";

export type CacheErrorCode =
  | "ERR_RESERVED" // caches.open("default")
  | "ERR_DESERIALIZATION"; // a stored response without its metadata (Miniflare 1's format)

export class CacheError extends MiniflareError<CacheErrorCode> {}
