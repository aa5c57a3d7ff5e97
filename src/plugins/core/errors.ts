import { MiniflareError } from "../../shared/errors.js";

export type MiniflareCoreErrorCode =
  | "ERR_NO_SCRIPT" // no script given and none found in wrangler.toml or package.json
  | "ERR_MOUNT_NO_NAME" // a mount with an empty name
  | "ERR_MOUNT_NESTED" // a mount that has mounts of its own
  | "ERR_MOUNT" // a mount failed to start (cause has the reason)
  | "ERR_MOUNT_NAME_MISMATCH" // a mount's name differs from its wrangler.toml name
  | "ERR_WORKERS_INVALID" // `workers` isn't a non-empty array of option objects
  | "ERR_WORKERS_AND_MOUNTS" // both `workers` and `mounts` given
  | "ERR_WORKER_NO_NAME" // a worker after the first in `workers` without a name
  | "ERR_WORKER_NAME_DUPLICATE" // two workers in `workers` with one name
  | "ERR_SERVICE_NOT_MOUNTED" // a service binding names a worker that isn't mounted
  | "ERR_SERVICE_NO_NAME" // a wrangler service with neither binding nor name
  | "ERR_SERVICE_NAME_MISMATCH" // a wrangler service with different binding and name
  | "ERR_INVALID_UPSTREAM"; // the upstream option isn't a URL

export class MiniflareCoreError extends MiniflareError<MiniflareCoreErrorCode> {}
