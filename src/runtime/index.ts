export * from "./errors.js";
export * from "./guards.js";
export * from "./instanceof.js";
export * from "./runner.js";
