// The self-signed certificate behind `--https` without a key and certificate
// of the user's own. Node makes the RSA key (natively, off the main thread);
// node-forge builds and signs the X.509 certificate, which Node can't. Only
// the parts of node-forge that do that are loaded (not its TLS, SSH, PKCS#12
// ...), and only when a certificate is generated.
import crypto from "node:crypto";
import { promisify } from "node:util";

const generateKeyPair = promisify(crypto.generateKeyPair);

const DAY = 86_400_000;

export interface GeneratedCertificate {
  /** PKCS#8 PEM */
  key: string;
  /** PEM */
  cert: string;
}

/**
 * A certificate for "localhost" and `ips`, valid from a minute before `now`
 * for `days` days, self-signed with a new 2048-bit RSA key
 */
export async function generateCertificate(now: number, days: number, ips: string[]): Promise<GeneratedCertificate> {
  const [{ privateKey }, { default: pki }, { default: forge }] = await Promise.all([
    generateKeyPair("rsa", { modulusLength: 2048 }),
    import("node-forge/lib/x509.js"),
    import("node-forge/lib/forge.js"),
    import("node-forge/lib/sha256.js"),
  ]);

  // Node's key, as node-forge's
  const der = privateKey.export({ type: "pkcs1", format: "der" });
  const signingKey = pki.privateKeyFromAsn1(forge.asn1.fromDer(der.toString("binary")));
  const cert = pki.createCertificate();
  cert.publicKey = pki.setRsaPublicKey(signingKey.n, signingKey.e);

  // RFC 5280 §4.1.2.2: a positive integer of at most 20 bytes
  const serial = crypto.randomBytes(16);
  // Positive (top bit clear) and a first byte that isn't zero, so the DER
  // integer keeps all 16 bytes (a leading zero byte would be dropped)
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  cert.serialNumber = serial.toString("hex");
  cert.validity.notBefore = new Date(now - 60_000);
  cert.validity.notAfter = new Date(now + days * DAY);
  const name = [{ name: "commonName", value: "localhost" }];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: "basicConstraints", cA: true },
    {
      name: "keyUsage",
      keyCertSign: true,
      digitalSignature: true,
      nonRepudiation: true,
      keyEncipherment: true,
      dataEncipherment: true,
    },
    { name: "extKeyUsage", serverAuth: true, clientAuth: true },
    {
      name: "subjectAltName",
      // 2: DNS name, 7: IP address
      altNames: [{ type: 2, value: "localhost" }, ...ips.map((ip) => ({ type: 7, ip }))],
    },
  ]);
  cert.sign(signingKey, forge.md.sha256.create());

  return {
    key: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
    // node-forge ends PEM lines with CRLF; Node (the key) with LF
    cert: pki.certificateToPem(cert).replaceAll("\r\n", "\n"),
  };
}
