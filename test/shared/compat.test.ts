import assert from "node:assert/strict";
import { test } from "node:test";
import {
  Compatibility,
  type CompatibilityEnableFlag,
  type CompatibilityFlag,
} from "../../src/shared/compat.js";

// [enable flag, disable flag (if any), default-on date (if any)]
const FLAGS: [
  enable: CompatibilityEnableFlag,
  disable: CompatibilityFlag | undefined,
  date: string | undefined,
][] = [
  ["nodejs_compat", undefined, undefined],
  ["streams_enable_constructors", "streams_disable_constructors", "2022-11-30"],
  [
    "transformstream_enable_standard_constructor",
    "transformstream_disable_standard_constructor",
    "2022-11-30",
  ],
  ["export_commonjs_default", "export_commonjs_namespace", "2022-10-31"],
  ["r2_list_honor_include", undefined, "2022-08-04"],
  ["global_navigator", "no_global_navigator", "2022-03-21"],
  [
    "durable_object_fetch_requires_full_url",
    "durable_object_fetch_allows_relative_url",
    "2021-11-10",
  ],
  [
    "fetch_refuses_unknown_protocols",
    "fetch_treats_unknown_protocols_as_http",
    "2021-11-10",
  ],
  [
    "formdata_parser_supports_files",
    "formdata_parser_converts_files_to_strings",
    "2021-11-03",
  ],
  [
    "workers_api_getters_setters_on_prototype",
    "workers_api_getters_setters_on_instance",
    "2022-01-31",
  ],
  ["html_rewriter_treats_esi_include_as_void_tag", undefined, undefined],
  ["experimental", undefined, undefined],
];

// "2021-11-10" → "2021-11-09", handling month/year boundaries
function dayBefore(date: string): string {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() - 1);
  return d.toISOString().substring(0, 10);
}

test("Compatibility: constructor: defaults to 1970-01-01 with no flags", () => {
  const compat = new Compatibility();
  assert.equal(compat.compatibilityDate, "1970-01-01");
  assert.deepEqual(compat.compatibilityFlags, []);
  assert.deepEqual(compat.enabled, []);
  for (const [flag] of FLAGS) assert.equal(compat.isEnabled(flag), false, flag);
});

test("Compatibility: isEnabled: dated flags are enabled on their default date, not the day before", () => {
  for (const [flag, , date] of FLAGS) {
    if (date === undefined) continue;
    assert.equal(new Compatibility(date).isEnabled(flag), true, `${flag} on ${date}`);
    const before = dayBefore(date);
    assert.equal(
      new Compatibility(before).isEnabled(flag),
      false,
      `${flag} on ${before}`
    );
    // ...and stays on for later dates
    assert.equal(new Compatibility("2099-12-31").isEnabled(flag), true, flag);
  }
});

test("Compatibility: isEnabled: undated flags are never enabled by the date", () => {
  const compat = new Compatibility("2099-12-31");
  for (const [flag, , date] of FLAGS) {
    if (date !== undefined) continue;
    assert.equal(compat.isEnabled(flag), false, flag);
  }
});

test("Compatibility: isEnabled: explicit enable flags enable features before their date", () => {
  for (const [flag] of FLAGS) {
    const compat = new Compatibility("1970-01-01", [flag]);
    assert.equal(compat.isEnabled(flag), true, flag);
    // Only that one feature is turned on
    assert.deepEqual(compat.enabled, [flag]);
  }
});

test("Compatibility: isEnabled: disable flags beat the date and the enable flag", () => {
  for (const [flag, disable] of FLAGS) {
    if (disable === undefined) continue;
    // Disables a feature enabled by the date...
    assert.equal(
      new Compatibility("2099-12-31", [disable]).isEnabled(flag),
      false,
      `${disable} vs date`
    );
    // ...and one explicitly enabled, whatever the order of the flags
    assert.equal(
      new Compatibility("1970-01-01", [flag, disable]).isEnabled(flag),
      false,
      `${disable} after ${flag}`
    );
    assert.equal(
      new Compatibility("2099-12-31", [disable, flag]).isEnabled(flag),
      false,
      `${disable} before ${flag}`
    );
  }
  // A disable flag only affects its own feature
  const compat = new Compatibility("2099-12-31", ["no_global_navigator"]);
  assert.equal(compat.isEnabled("global_navigator"), false);
  assert.equal(compat.isEnabled("formdata_parser_supports_files"), true);
  assert.equal(compat.isEnabled("streams_enable_constructors"), true);
});

test("Compatibility: isEnabled: unknown flags are ignored", () => {
  const compat = new Compatibility("2021-11-03", [
    "not_a_real_flag",
    "",
    "GLOBAL_NAVIGATOR",
  ]);
  assert.deepEqual(compat.enabled, ["formdata_parser_supports_files"]);
  assert.deepEqual(compat.compatibilityFlags, [
    "not_a_real_flag",
    "",
    "GLOBAL_NAVIGATOR",
  ]);
});

test("Compatibility: isEnabled: compares dates numerically, not as strings", () => {
  // As strings, "2021-11-9" > "2021-11-10" and "2021-9-1" > "2021-11-03"
  const nov9 = new Compatibility("2021-11-9");
  assert.equal(nov9.isEnabled("durable_object_fetch_requires_full_url"), false);
  assert.equal(nov9.isEnabled("fetch_refuses_unknown_protocols"), false);
  assert.equal(nov9.isEnabled("formdata_parser_supports_files"), true);

  assert.deepEqual(new Compatibility("2021-9-1").enabled, []);

  // Unpadded months and days are the same as padded ones
  assert.equal(new Compatibility("2022-3-21").isEnabled("global_navigator"), true);
  assert.equal(new Compatibility("2022-3-20").isEnabled("global_navigator"), false);
  assert.equal(
    new Compatibility("2021-11-3").isEnabled("formdata_parser_supports_files"),
    true
  );
  assert.equal(
    new Compatibility("2021-11-2").isEnabled("formdata_parser_supports_files"),
    false
  );
  // A later month with more digits is later
  assert.equal(
    new Compatibility("2022-10-1").isEnabled("r2_list_honor_include"),
    true
  );
});

test("Compatibility: enabled: lists every enabled feature", () => {
  assert.deepEqual(new Compatibility("2021-11-10").enabled.sort(), [
    "durable_object_fetch_requires_full_url",
    "fetch_refuses_unknown_protocols",
    "formdata_parser_supports_files",
  ]);
  const all = new Compatibility("2022-11-30", [
    "nodejs_compat",
    "html_rewriter_treats_esi_include_as_void_tag",
    "experimental",
  ]).enabled;
  assert.deepEqual(all.sort(), FLAGS.map(([flag]) => flag).sort());

  const withDisabled = new Compatibility("2022-11-30", [
    "streams_disable_constructors",
    "export_commonjs_namespace",
  ]).enabled;
  assert.deepEqual(withDisabled.sort(), [
    "durable_object_fetch_requires_full_url",
    "fetch_refuses_unknown_protocols",
    "formdata_parser_supports_files",
    "global_navigator",
    "r2_list_honor_include",
    "transformstream_enable_standard_constructor",
    "workers_api_getters_setters_on_prototype",
  ]);
});

test("Compatibility: enabled: returns a copy", () => {
  const compat = new Compatibility("2022-03-21");
  const enabled = compat.enabled;
  enabled.length = 0;
  assert.equal(compat.isEnabled("global_navigator"), true);
  assert.equal(compat.enabled.length > 0, true);
});

test("Compatibility: update: returns true only when the date or flags change", () => {
  const compat = new Compatibility("2021-01-01", ["global_navigator"]);
  assert.equal(compat.update("2021-01-01", ["global_navigator"]), false);
  // A new array with the same contents is not a change
  assert.equal(compat.update("2021-01-01", [...["global_navigator"]]), false);

  assert.equal(compat.update("2022-01-01", ["global_navigator"]), true);
  assert.equal(compat.compatibilityDate, "2022-01-01");
  assert.equal(compat.update("2022-01-01", ["global_navigator"]), false);

  assert.equal(compat.update("2022-01-01", ["global_navigator", "experimental"]), true);
  assert.deepEqual(compat.compatibilityFlags, ["global_navigator", "experimental"]);
  // Order of flags matters
  assert.equal(compat.update("2022-01-01", ["experimental", "global_navigator"]), true);
  assert.equal(compat.update("2022-01-01", ["experimental"]), true);

  // Omitted arguments mean the defaults
  assert.equal(compat.update(), true);
  assert.equal(compat.compatibilityDate, "1970-01-01");
  assert.deepEqual(compat.compatibilityFlags, []);
  assert.equal(compat.update(), false);
  assert.equal(compat.update("1970-01-01", []), false);
  assert.equal(compat.update(undefined, []), false);
});

test("Compatibility: update: recomputes enabled features", () => {
  const compat = new Compatibility();
  assert.equal(compat.isEnabled("global_navigator"), false);

  assert.equal(compat.update("2022-03-21"), true);
  assert.equal(compat.isEnabled("global_navigator"), true);
  assert.equal(compat.isEnabled("formdata_parser_supports_files"), true);

  assert.equal(compat.update("2022-03-21", ["no_global_navigator"]), true);
  assert.equal(compat.isEnabled("global_navigator"), false);
  assert.equal(compat.isEnabled("formdata_parser_supports_files"), true);

  assert.equal(compat.update("1970-01-01", ["nodejs_compat"]), true);
  assert.deepEqual(compat.enabled, ["nodejs_compat"]);
});
