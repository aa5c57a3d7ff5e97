// Small statistics helpers (no dependencies).
export function median(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

export function summarize(values) {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { n: 0, median: NaN, min: NaN, max: NaN, mean: NaN };
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  return { n: v.length, median: median(v), min: v[0], max: v[v.length - 1], mean };
}

/**
 * Evaluates a target: { op, ratio } against ours/mf2, or { op, value } against
 * ours' own median (in the metric's unit). op: "<=" | ">=" | "<" | ">".
 */
export function checkTarget(target, ratio, oursValue) {
  if (!target) return null;
  const x = target.value !== undefined ? oursValue : ratio;
  const limit = target.value !== undefined ? target.value : target.ratio;
  if (!Number.isFinite(x)) return null;
  if (target.op === "<=") return x <= limit;
  if (target.op === ">=") return x >= limit;
  if (target.op === "<") return x < limit;
  if (target.op === ">") return x > limit;
  throw new Error(`unknown target op ${target.op}`);
}
