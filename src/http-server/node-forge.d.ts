// Types for the node-forge modules cert.ts loads one by one (@types/node-forge
// describes only the whole package, whose index loads everything)
declare module "node-forge/lib/forge.js" {
  import type * as forge from "node-forge";
  const core: typeof forge;
  export default core;
}

declare module "node-forge/lib/x509.js" {
  import type { pki } from "node-forge";
  const x509: typeof pki;
  export default x509;
}

declare module "node-forge/lib/sha256.js" {}
