/**
 * Reading the Prometheus text exposition in tests: parse the sample lines and look one up by name
 * and exact labels.
 *
 * @module
 */
import assert from "node:assert/strict";

/** One sample line of the exposition text. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the sample lines (not the `#` comments) of a Prometheus text exposition. */
export function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `Cannot parse exposition line "${line}"`);
    const labels: Record<string, string> = {};
    for (const [, k, v] of m[2]?.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g) ?? []) {
      labels[k!] = v!;
    }
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample with this name and exactly these labels, or undefined. */
export function sampleValue(
  text: string,
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const want = JSON.stringify(Object.entries(labels).sort());
  const found = parseSamples(text).filter((s) =>
    s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want
  );
  assert.ok(found.length <= 1, `${found.length} samples of ${name} ${want}`);
  return found[0]?.value;
}

/** The values one label takes across the samples of a metric, sorted. */
export function labelValues(text: string, name: string, label: string): string[] {
  const values = parseSamples(text).filter((s) => s.name === name).map((s) => s.labels[label]!);
  return [...new Set(values)].sort();
}
