export * from "./errors.js";
export * from "./factory.js";
export * from "./file.js";
export * from "./keys.js";
export * from "./list.js";
export * from "./lock.js";
export * from "./memory.js";
export * from "./redis.js";
