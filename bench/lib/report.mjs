// Formatting of the results table (console + markdown).
export function fmt(value, unit) {
  if (!Number.isFinite(value)) return "—";
  if (unit === "req/s" || unit === "µs") return Math.round(value).toLocaleString("en-US");
  if (unit === "ms") return value < 10 ? value.toFixed(2) : value.toFixed(1);
  if (unit === "packages" || unit === "files") return Math.round(value).toLocaleString("en-US");
  return value.toFixed(2);
}

export function fmtRatio(r) {
  return Number.isFinite(r) ? `${r.toFixed(2)}×` : "—";
}

export function fmtTarget(t, unit) {
  if (!t) return "—";
  // An absolute target applies to ours' own median, not to the ratio.
  if (t.value !== undefined) return `ours ${t.op} ${t.value}${unit ? ` ${unit}` : ""}`;
  return `${t.op} ${t.ratio}×`;
}

export function fmtPass(p) {
  return p === true ? "PASS" : p === false ? "FAIL" : "—";
}

/** rows: array of { scenario, metric, unit, mf2, ours, ratio, target, pass, error } */
export function tableRows(rows) {
  const header = ["scenario", "metric", "mf2", "ours", "ours/mf2", "target", "result"];
  const body = rows.map((r) =>
    r.error
      ? [r.scenario, "ERROR", "", "", "", "", r.error]
      : [
          r.scenario,
          `${r.metric} (${r.unit})`,
          fmt(r.mf2, r.unit),
          fmt(r.ours, r.unit),
          fmtRatio(r.ratio),
          fmtTarget(r.target, r.unit),
          fmtPass(r.pass),
        ]
  );
  return { header, body };
}

export function consoleTable(rows) {
  const { header, body } = tableRows(rows);
  const all = [header, ...body];
  const widths = header.map((_, i) => Math.max(...all.map((r) => String(r[i]).length)));
  const numeric = new Set([2, 3, 4]);
  const line = (r) =>
    r
      .map((c, i) => (numeric.has(i) ? String(c).padStart(widths[i]) : String(c).padEnd(widths[i])))
      .join("  ")
      .trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)].join("\n");
}

export function markdownTable(rows) {
  const { header, body } = tableRows(rows);
  const esc = (c) => String(c).replace(/\|/g, "\\|");
  const align = header.map((_, i) => ([2, 3, 4].includes(i) ? "---:" : "---"));
  return [
    `| ${header.join(" | ")} |`,
    `| ${align.join(" | ")} |`,
    ...body.map((r) => `| ${r.map(esc).join(" | ")} |`),
  ].join("\n");
}
