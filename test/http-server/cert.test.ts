import assert from "node:assert/strict";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { test } from "node:test";
import { generateCertificate } from "../../src/http-server/cert.js";

const DAY = 86_400_000;

test("generateCertificate: a self-signed localhost certificate for the given addresses and dates", async () => {
  // Whole seconds: X.509 times have no milliseconds
  const now = Date.UTC(2030, 0, 15, 12, 0, 0);
  const { key, cert } = await generateCertificate(now, 30, ["127.0.0.1", "10.1.2.3"]);
  assert.match(key, /^-----BEGIN PRIVATE KEY-----\n/);
  assert.match(cert, /^-----BEGIN CERTIFICATE-----\n/);

  const x509 = new X509Certificate(cert);
  assert.equal(x509.subject, "CN=localhost");
  assert.equal(x509.issuer, "CN=localhost");
  assert.equal(x509.subjectAltName, "DNS:localhost, IP Address:127.0.0.1, IP Address:10.1.2.3");
  assert.equal(Date.parse(x509.validFrom), now - 60_000);
  assert.equal(Date.parse(x509.validTo), now + 30 * DAY);
  // Signed by its own key, which is the one returned
  const privateKey = createPrivateKey(key);
  assert(x509.verify(x509.publicKey));
  assert(x509.checkPrivateKey(privateKey));
  assert.equal(privateKey.asymmetricKeyDetails?.modulusLength, 2048);
  assert.equal(x509.ca, true);
  assert.deepEqual(x509.keyUsage, ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"]); // serverAuth, clientAuth
  // A positive serial number (RFC 5280), different every time
  // (16 bytes: first byte 0x40-0x7f, so never negative nor shortened)
  assert.match(x509.serialNumber, /^[4-7][0-9A-F]{31}$/);
  const again = new X509Certificate((await generateCertificate(now, 30, [])).cert);
  assert.notEqual(again.serialNumber, x509.serialNumber);
  assert.equal(again.subjectAltName, "DNS:localhost");
});
