/** `node:buffer` for `nodejs_compat` */
import { Buffer, SlowBuffer, constants, kMaxLength, kStringMaxLength } from "node:buffer";

export const bufferModule = {
  default: { Buffer, constants, kMaxLength, kStringMaxLength, SlowBuffer },
  Buffer,
  SlowBuffer,
  constants,
  kMaxLength,
  kStringMaxLength,
};
