import { MiniflareError } from "../shared/errors.js";

export type FileStorageErrorCode =
  | "ERR_TRAVERSAL" // a key would reach outside its directory
  | "ERR_LOCKED" // another process persists to the same directory
  | "ERR_MIGRATION"; // data persisted by Miniflare 2 couldn't be written into the current layout

export class FileStorageError extends MiniflareError<FileStorageErrorCode> {}
