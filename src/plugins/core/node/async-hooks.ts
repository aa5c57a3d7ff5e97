/** `node:async_hooks` for `nodejs_compat` */
import { AsyncLocalStorage, AsyncResource } from "node:async_hooks";

export const asyncHooksModule = {
  default: { AsyncLocalStorage, AsyncResource },
  AsyncLocalStorage,
  AsyncResource,
};
