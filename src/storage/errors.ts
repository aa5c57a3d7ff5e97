import { MiniflareError } from "../shared/errors.js";

export type FileStorageErrorCode = "ERR_TRAVERSAL";

export class FileStorageError extends MiniflareError<FileStorageErrorCode> {}
