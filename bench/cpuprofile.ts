/**
 * Summarises a V8 `.cpuprofile` (from `deno run --cpu-prof`): self time by function and by file,
 * and total (inclusive) time of the heaviest functions. How the findings in `bench/findings.md`
 * were made:
 *
 * ```sh
 * deno run --cpu-prof --cpu-prof-dir=/tmp/prof -A main.ts   # + load, then SIGTERM
 * deno run -A bench/cpuprofile.ts /tmp/prof/CPU.*.cpuprofile [--top 25]
 * ```
 *
 * @module
 */

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

/** Self and inclusive time shares of a profile. */
export function summarize(profile: Profile, top = 25): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const short = (url: string) =>
    url.replace(/^file:\/\/.*?\/node_modules\/\.deno\//, "npm:").replace(
      /^file:\/\/.*?\/main\//,
      "",
    )
      .replace(/\/node_modules\/[^/]+\//, "/");
  const name = (n: Node) =>
    `${n.callFrame.functionName || "(anonymous)"} ${short(n.callFrame.url)}:${
      n.callFrame.lineNumber + 1
    }`;
  const self = new Map<string, number>();
  const byFile = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    self.set(name(n), (self.get(name(n)) ?? 0) + us);
    const file = short(n.callFrame.url) || `(${n.callFrame.functionName})`;
    byFile.set(file, (byFile.get(file) ?? 0) + us);
    // Inclusive: every distinct frame on the stack gets the sample once.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const k = name(byId.get(cur)!);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + us);
    }
  }
  const table = (title: string, m: Map<string, number>) =>
    [
      `${title}:`,
      ...[...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, us]) =>
        `${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`
      ),
    ].join("\n");
  return [
    `${(total / 1e6).toFixed(1)} s sampled`,
    table("self time by file", byFile),
    table("self time by function", self),
    table("total time by function", inclusive),
  ].join("\n\n");
}

if (import.meta.main) {
  const ti = Deno.args.indexOf("--top");
  const top = ti >= 0 ? Number(Deno.args[ti + 1]) : 25;
  for (const path of Deno.args.filter((a, i) => a !== "--top" && Deno.args[i - 1] !== "--top")) {
    console.log(`== ${path}`);
    console.log(summarize(JSON.parse(await Deno.readTextFile(path)) as Profile, top));
  }
}
