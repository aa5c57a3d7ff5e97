export * from "./gate.js";
export * from "./mutex.js";
