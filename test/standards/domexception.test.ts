import assert from "node:assert/strict";
import { test } from "node:test";
import { DOMException } from "../../src/standards/domexception.js";

const LEGACY_CODES: [name: string, constant: string, code: number][] = [
  ["IndexSizeError", "INDEX_SIZE_ERR", 1],
  ["DOMStringSizeError", "DOMSTRING_SIZE_ERR", 2],
  ["HierarchyRequestError", "HIERARCHY_REQUEST_ERR", 3],
  ["WrongDocumentError", "WRONG_DOCUMENT_ERR", 4],
  ["InvalidCharacterError", "INVALID_CHARACTER_ERR", 5],
  ["NoDataAllowedError", "NO_DATA_ALLOWED_ERR", 6],
  ["NoModificationAllowedError", "NO_MODIFICATION_ALLOWED_ERR", 7],
  ["NotFoundError", "NOT_FOUND_ERR", 8],
  ["NotSupportedError", "NOT_SUPPORTED_ERR", 9],
  ["InUseAttributeError", "INUSE_ATTRIBUTE_ERR", 10],
  ["InvalidStateError", "INVALID_STATE_ERR", 11],
  ["SyntaxError", "SYNTAX_ERR", 12],
  ["InvalidModificationError", "INVALID_MODIFICATION_ERR", 13],
  ["NamespaceError", "NAMESPACE_ERR", 14],
  ["InvalidAccessError", "INVALID_ACCESS_ERR", 15],
  ["ValidationError", "VALIDATION_ERR", 16],
  ["TypeMismatchError", "TYPE_MISMATCH_ERR", 17],
  ["SecurityError", "SECURITY_ERR", 18],
  ["NetworkError", "NETWORK_ERR", 19],
  ["AbortError", "ABORT_ERR", 20],
  ["URLMismatchError", "URL_MISMATCH_ERR", 21],
  ["QuotaExceededError", "QUOTA_EXCEEDED_ERR", 22],
  ["TimeoutError", "TIMEOUT_ERR", 23],
  ["InvalidNodeTypeError", "INVALID_NODE_TYPE_ERR", 24],
  ["DataCloneError", "DATA_CLONE_ERR", 25],
];

test('DOMException: name defaults to "Error"', () => {
  const error = new DOMException("msg");
  assert.equal(error.name, "Error");
  assert.equal(error.message, "msg");
  assert.equal(error.code, 0);
  assert.equal(new DOMException().message, "");
});
test("DOMException: code: returns correct code for name", () => {
  assert.equal(new DOMException("msg", "SyntaxError").code, DOMException.SYNTAX_ERR);
  for (const [name, , code] of LEGACY_CODES) {
    assert.equal(new DOMException("msg", name).code, code, name);
  }
});
test("DOMException: code: returns 0 for unknown name", () => {
  assert.equal(new DOMException("msg", "UnknownError").code, 0);
  assert.equal(new DOMException("msg", "toString").code, 0);
  assert.equal(new DOMException("msg", "EncodingError").code, 0);
});
test("DOMException: has legacy code constants", () => {
  const statics = DOMException as unknown as Record<string, number>;
  for (const [, constant, code] of LEGACY_CODES) {
    assert.equal(statics[constant], code, constant);
  }
  assert.equal(LEGACY_CODES.length, 25);
});
test("DOMException: is an Error", () => {
  const error = new DOMException("msg", "AbortError");
  assert(error instanceof Error);
  assert(error instanceof DOMException);
  assert.equal(String(error), "AbortError: msg");
  assert.match(error.stack ?? "", /^AbortError: msg\n/);
});
