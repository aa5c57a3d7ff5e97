// Tests for Body#formData() parsing (spec §2.3, busboy-compatible behaviour)
import assert from "node:assert/strict";
import { test } from "node:test";
import { Body, Request, Response, withStringFormDataFiles } from "../../src/standards/http.js";
import { MULTIPART_CONTENT_TYPE as MULTIPART, multipartFileLines } from "../helpers/http.js";

const BaseResponse = globalThis.Response;

function multipart(lines: string[], contentType: string | null = MULTIPART): Body {
  const headers: Record<string, string> = {};
  if (contentType !== null) headers["content-type"] = contentType;
  return new Body(new BaseResponse(lines.join("\r\n"), { headers }));
}

function entries(formData: FormData): [string, string][] {
  return [...formData].map(([key, value]) => [
    key,
    typeof value === "string" ? value : `File(${value.name},${value.type},${value.size})`,
  ]);
}

test("Body: formData: parses regular form data fields", async () => {
  let body: Body = new Body(
    new BaseResponse("key1=value1&key2=value2", {
      headers: { "content-type": "application/x-www-form-urlencoded" },
    })
  );
  let formData = await body.formData();
  assert.equal(formData.get("key1"), "value1");
  assert.equal(formData.get("key2"), "value2");

  body = multipart([
    "--boundary",
    'Content-Disposition: form-data; name="key1"',
    "",
    "multipart value1",
    "--boundary",
    'Content-Disposition: form-data; name="key2"',
    "",
    "multipart value2",
    "--boundary",
    'Content-Disposition: form-data; name="key2"',
    "",
    "second value2",
    "--boundary--",
  ]);
  formData = await body.formData();
  assert.equal(formData.get("key1"), "multipart value1");
  assert.deepEqual(formData.getAll("key2"), ["multipart value2", "second value2"]);
});

// The file field "key" of a multipart body, checking it parsed as a File
async function parsedFile(lines: string[]): Promise<File> {
  const file = (await multipart(lines).formData()).get("key");
  assert(file instanceof File);
  return file;
}

test("Body: formData: parses files as File objects by default", async () => {
  const file = await parsedFile(multipartFileLines());
  assert.equal(await file.text(), "file contents");
  assert.equal(file.name, "test.txt");
  assert.equal(file.type, "text/plain");
});

test("Body: formData: preserves path of File objects", async () => {
  const file = await parsedFile(multipartFileLines("directory/test.txt"));
  assert.equal(await file.text(), "file contents");
  assert.equal(file.name, "directory/test.txt");
});

test("Body: formData: parses files as strings if option set", async () => {
  const body = withStringFormDataFiles(multipart(multipartFileLines()));
  const formData = await body.formData();
  assert.equal(formData.get("key"), "file contents");
});

test("Body: formData: respects Content-Transfer-Encoding header for base64 encoded files", async () => {
  const lines = multipartFileLines("test.txt", "dGVzdA==", ["Content-Transfer-Encoding: base64"]);
  const formData = await withStringFormDataFiles(multipart(lines)).formData();
  assert.equal(formData.get("key"), "test");
  const file = await parsedFile(lines);
  assert.equal(await file.text(), "test");
});

test("Body: formData: requires Content-Type header", async () => {
  const body = new Body(new BaseResponse(new Uint8Array([1])));
  await assert.rejects(body.formData(), {
    name: "TypeError",
    message: "Parsing a Body as FormData requires a Content-Type header.",
  });
  // The check happens before the body is read
  assert.equal(body.bodyUsed, false);
});

test("Body: formData: throws on unsupported Content-Type", async () => {
  let body = new Body(new BaseResponse("{}", { headers: { "Content-Type": "application/json" } }));
  await assert.rejects(body.formData(), {
    name: "TypeError",
    message: "Unsupported content type: application/json",
  });
  assert.equal(body.bodyUsed, false);
  // Strings get text/plain;charset=UTF-8 by default
  body = new Body(new BaseResponse("a=b"));
  await assert.rejects(body.formData(), {
    name: "TypeError",
    message: "Unsupported content type: text/plain;charset=UTF-8",
  });
});

test("Body: formData: throws on malformed Content-Type", async () => {
  const body = multipart(["a=b"], "garbage");
  await assert.rejects(body.formData(), { name: "TypeError", message: "Malformed content type" });
});

test("Body: formData: throws if multipart boundary missing", async () => {
  const body = multipart(["x"], "multipart/form-data");
  await assert.rejects(body.formData(), {
    name: "TypeError",
    message: "Multipart: Boundary not found",
  });
});

// [test title, error message, bodies (lines) that must fail with it]
const malformedMultipartCases: [string, string, string[][]][] = [
  [
    "unexpected end of form",
    "Unexpected end of form",
    [
      ["--boundary", 'Content-Disposition: form-data; name="key"', "", "value"],
      ["--boundary", 'Content-Disposition: form-data; name="key"', "", "value", "--boundary"],
      ["garbage"],
      [""],
    ],
  ],
  [
    "malformed part header",
    "Malformed part header",
    [
      ["--boundary", "garbage header", "", "value", "--boundary--"],
      ["--boundary", "", "value", "--boundary--"],
      ["--boundary", 'Content-Disposition: form-data; name="key"', "value", "--boundary--"],
    ],
  ],
];
for (const [title, message, bodies] of malformedMultipartCases) {
  test(`Body: formData: throws on ${title}`, async () => {
    for (const lines of bodies) {
      await assert.rejects(multipart(lines).formData(), { name: "TypeError", message });
    }
  });
}

test("Body: formData: ignores preamble, epilogue and non form-data parts", async () => {
  const formData = await multipart([
    "preamble",
    "--boundary",
    "Content-Type: text/plain",
    "",
    "no disposition",
    "--boundary",
    'Content-Disposition: attachment; name="other"',
    "",
    "attachment",
    "--boundary",
    'Content-Disposition: form-data; name="key"',
    "",
    "value",
    "--boundary--",
    "epilogue",
  ]).formData();
  assert.deepEqual(entries(formData), [["key", "value"]]);
});

test("Body: formData: classifies parts like busboy", async () => {
  const formData = await multipart([
    "--boundary",
    // Empty filename: a regular field
    'Content-Disposition: form-data; name="empty"; filename=""',
    "",
    "field",
    "--boundary",
    // application/octet-stream without a filename: a file
    'Content-Disposition: form-data; name="octet"',
    "Content-Type: application/octet-stream",
    "",
    "bytes",
    "--boundary",
    // Files default to text/plain
    'Content-Disposition: form-data; name="plain"; filename="a.bin"',
    "",
    "x",
    "--boundary",
    // Missing names become "undefined"
    "Content-Disposition: form-data",
    "",
    "nameless",
    "--boundary--",
  ]).formData();
  assert.deepEqual(entries(formData), [
    ["empty", "field"],
    ["octet", "File(undefined,application/octet-stream,5)"],
    ["plain", "File(a.bin,text/plain,1)"],
    ["undefined", "nameless"],
  ]);
});

test("Body: formData: decodes parameters and charsets", async () => {
  const body = new Body(
    new BaseResponse(
      Buffer.concat([
        Buffer.from(
          [
            "--boundary",
            `Content-Disposition: form-data; name="k\\"ey"; filename*=utf-8''%E2%82%AC%20rates.txt`,
            "",
            "euro",
            "--boundary",
            'Content-Disposition: form-data; name="utf8"; filename="caf\u00e9.txt"',
            "",
            "file",
            "--boundary",
            'Content-Disposition: form-data; name="latin"',
            "Content-Type: text/plain; charset=iso-8859-1",
            "",
            "",
          ].join("\r\n")
        ),
        Buffer.from([0xe9]),
        Buffer.from("\r\n--boundary--"),
      ]),
      { headers: { "content-type": MULTIPART } }
    )
  );
  const formData = await body.formData();
  const euro = formData.get('k"ey');
  assert(euro instanceof File);
  assert.equal(euro.name, "\u20ac rates.txt");
  const utf8 = formData.get("utf8");
  assert(utf8 instanceof File);
  assert.equal(utf8.name, "caf\u00e9.txt");
  assert.equal(formData.get("latin"), "\u00e9");
});

test("Body: formData: handles folded headers and unquoted boundaries", async () => {
  const formData = await multipart(
    ["--b0undary", "Content-Disposition: form-data;", ' name="key"', "", "value", "--b0undary--"],
    "Multipart/Form-Data; boundary=b0undary"
  ).formData();
  assert.deepEqual(entries(formData), [["key", "value"]]);
});

test("Body: formData: parses urlencoded bodies", async () => {
  const body = new Body(
    new BaseResponse("a=b&c=d%20e+f&g&&h=%41&=empty", {
      headers: { "content-type": "application/x-www-form-urlencoded; charset=utf-8" },
    })
  );
  assert.deepEqual(entries(await body.formData()), [
    ["a", "b"],
    ["c", "d e f"],
    ["g", ""],
    ["h", "A"],
    ["", "empty"],
  ]);
  const empty = new Body(
    new BaseResponse("", { headers: { "content-type": "application/x-www-form-urlencoded" } })
  );
  assert.deepEqual(entries(await empty.formData()), []);
});

test("Body: formData: throws on malformed urlencoded bodies", async () => {
  const body = new Body(
    new BaseResponse("a=%zz", { headers: { "content-type": "application/x-www-form-urlencoded" } })
  );
  await assert.rejects(body.formData(), { name: "TypeError", message: "Malformed urlencoded form" });
});

test("Body: formData: round-trips FormData bodies", async () => {
  const formData = new FormData();
  formData.append("field", "value");
  formData.append("file", new File(["contents"], "dir/file.txt", { type: "text/html" }));
  const parsed = await new Request("http://localhost", { method: "POST", body: formData }).formData();
  assert.equal(parsed.get("field"), "value");
  const file = parsed.get("file");
  assert(file instanceof File);
  assert.equal(file.name, "dir/file.txt");
  assert.equal(file.type, "text/html");
  assert.equal(await file.text(), "contents");

  const strings = await withStringFormDataFiles(new Response(formData)).formData();
  assert.deepEqual(entries(strings), [
    ["field", "value"],
    ["file", "contents"],
  ]);
});

test("Body: formData: throws if body already used", async () => {
  const res = new Response("a=b", {
    headers: { "content-type": "application/x-www-form-urlencoded" },
  });
  await res.text();
  await assert.rejects(res.formData(), { name: "TypeError" });
});
