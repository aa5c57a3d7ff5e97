export * from "./plugin.js";
