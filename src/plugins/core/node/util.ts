/** `node:util` for `nodejs_compat` */
import util from "node:util";

// `_extend` is deprecated, so it's missing from Node's type declarations
const { _extend } = util as typeof util & { _extend: unknown };
const { types, callbackify, promisify, format, inherits } = util;

export const utilModule = {
  default: { types, callbackify, promisify, format, inherits, _extend },
  _extend,
  callbackify,
  format,
  inherits,
  promisify,
  types,
};
