export * from "./alarms.js";
export * from "./errors.js";
export * from "./namespace.js";
export * from "./plugin.js";
export * from "./storage.js";
