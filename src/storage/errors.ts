import { MiniflareError } from "../shared/errors.js";

export type FileStorageErrorCode =
  | "ERR_TRAVERSAL" // a key would reach outside its directory
  | "ERR_LOCKED"; // another process persists to the same directory

export class FileStorageError extends MiniflareError<FileStorageErrorCode> {}
