export * from "./errors.js";
export * from "./instanceof.js";
export * from "./runner.js";
