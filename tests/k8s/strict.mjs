// Strict field check: the OpenAPI validators accept unknown fields (as the API
// server does without --validate=strict); kubectl's strict validation rejects
// them. Offline we get the same by type-checking each object against the
// TypeScript types generated from the same schemas: an object literal with a
// misspelled or misplaced field is a TS2353/TS2561 error naming the field.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";

const TYPES = {
  "v1": ["Namespace", "ConfigMap", "PersistentVolumeClaim", "Service", "Secret"],
  "apps/v1": ["Deployment", "StatefulSet"],
  "networking.k8s.io/v1": ["NetworkPolicy"],
  "policy/v1": ["PodDisruptionBudget"],
};

// sets: [{name, objects}] -> Map(set name -> problems)
export function checkStrict(sets, here) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "zerorl-k8s-ts-"));
  const files = [];
  const out = new Map(sets.map((s) => [s.name, []]));
  const lines = new Map();  // file -> [{set, object}] by line
  const imports = [];
  for (const [group, kinds] of Object.entries(TYPES)) {
    for (const k of kinds) imports.push(`import type { I${k} } from "kubernetes-models/${group === "v1" ? "v1" : group}/${k}";`);
  }
  sets.forEach((set, i) => {
    const file = path.join(dir, `set${i}.ts`);
    const body = [...imports, "export {};"];
    const byLine = [];
    set.objects.forEach((o, j) => {
      const known = (TYPES[o.apiVersion] ?? []).includes(o.kind);
      if (!known) { out.get(set.name).push(`${o.kind}/${o.metadata?.name}: no types for ${o.apiVersion} ${o.kind}`); return; }
      byLine[body.length + 1] = `${o.kind}/${o.metadata?.name}`;
      body.push(`const o${j}: I${o.kind} = ${JSON.stringify(o)};`);
    });
    fs.writeFileSync(file, body.join("\n") + "\n");
    files.push(file);
    lines.set(file, { set: set.name, byLine });
  });
  // Resolve kubernetes-models from beside this script (node_modules there).
  fs.writeFileSync(path.join(dir, "package.json"), '{"type": "module"}\n');
  fs.symlinkSync(path.join(here, "node_modules"), path.join(dir, "node_modules"));
  const tsc = createRequire(path.join(here, "x.js")).resolve("typescript/bin/tsc");
  const r = spawnSync(process.execPath, [tsc, "--noEmit", "--strict", "--module", "node16", "--moduleResolution", "node16",
                                          "--skipLibCheck", ...files], { encoding: "utf8", cwd: dir });
  const re = /^(.*\.ts)\((\d+),(\d+)\): error (TS\d+): (.*)$/;
  for (const line of (r.stdout + r.stderr).split("\n")) {
    const m = re.exec(line.trim());
    if (!m) continue;
    const info = lines.get(path.resolve(dir, m[1]));
    if (!info) continue;
    out.get(info.set).push(`${info.byLine[Number(m[2])] ?? "line " + m[2]}: ${m[4]} ${m[5]}`);
  }
  if (r.status !== 0 && [...out.values()].every((p) => p.length === 0)) {
    out.set(sets[0]?.name ?? "tsc", [`tsc failed without diagnostics: ${(r.stdout + r.stderr).slice(0, 500)}`]);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return out;
}
