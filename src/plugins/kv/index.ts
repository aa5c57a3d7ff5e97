export * from "./namespace.js";
export * from "./plugin.js";
