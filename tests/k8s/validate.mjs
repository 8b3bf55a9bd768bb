// Offline checks of every zerorl Kubernetes manifest set (run by ctest as k8s_manifests).
//
// Sets: `zerorl k8s render` of each examples/k8s/*.yaml (always), and k8s/base
// plus each k8s/overlays/* rendered by `kubectl kustomize` (skipped, with the
// reason printed, when kubectl is missing). For every set:
//   1. schema: each object against the Kubernetes OpenAPI schema (kubernetes-models),
//      and strictly: no unknown fields (its TypeScript types, strict.mjs)
//   2. pod security: the Restricted Pod Security Standard, plus our hardening
//      (read-only root, probes on the health port, resources, no SA token)
//   3. wiring: namespaces, selectors, named ports, referenced ConfigMaps/PVCs,
//      headless services of StatefulSets, the reward pods' no-egress policy
//   4. args: each container's command line, run as `zerorl serve ROLE ... --check`
//      against the ConfigMaps it mounts, exits 0 and listens on its containerPort
// And: each kustomize set equals the render of its example config (see PAIRS),
// and every checker reports broken variants of a good set (selftest.mjs).
//
// usage: node validate.mjs --root SRC --zerorl BIN [--kubectl PATH|none]
import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { checkPodSecurity, checkHardening } from "./pod_security.mjs";
import { checkSchema } from "./schema.mjs";
import { runSelfTest } from "./selftest.mjs";
import { checkStrict } from "./strict.mjs";
import { checkWiring } from "./wiring.mjs";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const root = path.resolve(args.root ?? path.join(path.dirname(new URL(import.meta.url).pathname), "../.."));
const zerorl = args.zerorl;
if (!zerorl || !fs.existsSync(zerorl)) {
  console.error(`validate.mjs: --zerorl must name the built zerorl binary (got ${zerorl})`);
  process.exit(2);
}

// kustomize directory -> the example config whose render must equal it.
const PAIRS = {
  "k8s/base": "examples/k8s/countdown-gpu.yaml",
  "k8s/overlays/countdown-cpu": "examples/k8s/countdown-cpu.yaml",
  "k8s/overlays/gsm8k-gpu": "examples/k8s/gsm8k-gpu.yaml",
};

let passed = 0;
let failed = 0;
let skipped = 0;
function report(name, problems) {
  if (problems.length === 0) {
    passed++;
    console.log(`ok    ${name}`);
  } else {
    failed++;
    console.log(`FAIL  ${name}`);
    for (const p of problems) console.log(`        ${p}`);
  }
}

function parseStream(text, source) {
  const objects = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length) throw new Error(`${source}: ${doc.errors[0].message}`);
    const obj = doc.toJS();
    if (obj !== null) objects.push(obj);
  }
  return objects;
}

function findKubectl() {
  if (args.kubectl === "none") return null;
  if (args.kubectl) return args.kubectl;
  const r = spawnSync("sh", ["-c", "command -v kubectl"], { encoding: "utf8" });
  if (r.status !== 0) return null;
  const bin = r.stdout.trim();
  // The overlays use `resources: [../../base]`, which needs kustomize >= v3 (kubectl >= 1.21);
  // Debian 12's kubernetes-client (kubectl 1.20, kustomize v2) cannot render them.
  const v = spawnSync(bin, ["version", "--client"], { encoding: "utf8" });
  const m = /Kustomize Version: v(\d+)/.exec(`${v.stdout}${v.stderr}`);
  if (!m || Number(m[1]) < 3) {
    kubectlTooOld = `${bin} has no kustomize >= v3`;
    return null;
  }
  return bin;
}
let kubectlTooOld = "";

// ---- the sets ----
const sets = [];  // {name, objects, example}
for (const file of fs.readdirSync(path.join(root, "examples/k8s")).filter((f) => f.endsWith(".yaml")).sort()) {
  const rel = `examples/k8s/${file}`;
  const r = spawnSync(zerorl, ["k8s", "render", "--config", rel], { cwd: root, encoding: "utf8" });
  if (r.status !== 0) {
    report(`render ${rel}`, [`zerorl k8s render exited ${r.status}: ${r.stderr.trim()}`]);
    continue;
  }
  sets.push({ name: `render ${rel}`, objects: parseStream(r.stdout, rel), example: rel });
}
const kubectl = findKubectl();
if (kubectl === null) {
  skipped += Object.keys(PAIRS).length;
  console.log(`skip  k8s/base and k8s/overlays/*: ${kubectlTooOld || "kubectl not found"} ` +
              "(install kubectl >= 1.21 to check them); the rendered manifests above are still checked");
} else {
  for (const dir of Object.keys(PAIRS)) {
    const r = spawnSync(kubectl, ["kustomize", path.join(root, dir)], { encoding: "utf8" });
    if (r.status !== 0) {
      report(`kustomize ${dir}`, [`kubectl kustomize exited ${r.status}: ${r.stderr.trim()}`]);
      continue;
    }
    sets.push({ name: `kustomize ${dir}`, objects: parseStream(r.stdout, dir), pair: PAIRS[dir] });
  }
}

// ---- checks per set ----
function podTemplates(objects) {
  return objects
    .filter((o) => ["Deployment", "StatefulSet", "DaemonSet", "Job"].includes(o.kind))
    .map((o) => ({ owner: `${o.kind}/${o.metadata.name}`, workload: o, pod: o.spec.template }));
}

// Runs one container's command line with --check, with its ConfigMap and Secret
// volumes written to a temp dir and the paths in its args pointed there.
function checkArgs(objects, owner, pod, container) {
  const problems = [];
  if (container.command !== undefined) problems.push(`${owner}: command is set; the image's ENTRYPOINT (zerorl) must run`);
  const argv = container.args ?? [];
  if (argv[0] !== "serve") return [`${owner}: args must start with "serve ROLE", got ${JSON.stringify(argv)}`];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "zerorl-k8s-"));
  const mounts = [];
  for (const m of container.volumeMounts ?? []) {
    const vol = (pod.spec.volumes ?? []).find((v) => v.name === m.name);
    if (!vol) continue;
    const local = path.join(dir, m.mountPath);
    fs.mkdirSync(local, { recursive: true });
    mounts.push([m.mountPath, local]);
    if (vol.configMap) {
      const cm = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === vol.configMap.name);
      for (const [k, v] of Object.entries(cm?.data ?? {})) fs.writeFileSync(path.join(local, k), v);
    } else if (vol.secret) {
      fs.writeFileSync(path.join(local, "token"), `validate-${vol.secret.secretName}\n`);
    }
  }
  // The downward API as the kubelet fills it for the first pod of the workload.
  const fieldValue = { "metadata.name": `${owner.split("/")[1]}-0`, "status.podIP": "127.0.0.1" };
  const env = Object.fromEntries((container.env ?? []).map(
    (e) => [e.name, e.value ?? fieldValue[e.valueFrom?.fieldRef?.fieldPath] ?? ""]));
  const localPath = (a) => {
    for (const [mp, local] of mounts) if (a === mp || a.startsWith(mp + "/")) return local + a.slice(mp.length);
    return a;
  };
  const expanded = argv.map((a) => localPath(a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, n) => env[n] ?? m)));
  const r = spawnSync(zerorl, [...expanded, "--check"], { cwd: root, encoding: "utf8" });
  if (r.status !== 0) {
    problems.push(`${owner}: \`zerorl ${expanded.join(" ")} --check\` exited ${r.status}: ${(r.stderr + r.stdout).trim()}`);
  } else {
    const grpc = (container.ports ?? []).find((p) => p.name === "grpc");
    const m = /would listen on (\S+):(\d+)/.exec(r.stdout);
    if (!m) problems.push(`${owner}: --check printed no listen address: ${r.stdout.trim()}`);
    else if (!grpc || Number(m[2]) !== grpc.containerPort)
      problems.push(`${owner}: serves on port ${m[2]} but its containerPort "grpc" is ${grpc?.containerPort}`);
    // The health port the process opens (server.health_port) is the one the probes use.
    const cfgArg = expanded[expanded.indexOf("--config") + 1];
    const cfg = parseYaml(fs.readFileSync(cfgArg, "utf8")) ?? {};
    const health = (container.ports ?? []).find((p) => p.name === "health");
    if (cfg.server?.health_port !== health?.containerPort)
      problems.push(`${owner}: server.health_port ${cfg.server?.health_port} != containerPort "health" ${health?.containerPort}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  return problems;
}

for (const set of sets) {
  const { objects } = set;
  report(`${set.name}: schema`, objects.flatMap(checkSchema));
  const pods = podTemplates(objects);
  report(`${set.name}: pod security (restricted)`, pods.flatMap((p) => checkPodSecurity(p.owner, p.pod.spec)));
  report(`${set.name}: hardening`, pods.flatMap((p) => checkHardening(p.owner, p.pod.spec)));
  report(`${set.name}: wiring`, checkWiring(objects));
  report(`${set.name}: container args (zerorl serve --check)`,
         pods.flatMap((p) => p.pod.spec.containers.flatMap((c) => checkArgs(objects, p.owner, p.pod, c))));
}

// ---- strict fields: no unknown or misplaced keys (one tsc run for all sets) ----
{
  const here = path.dirname(new URL(import.meta.url).pathname);
  const probe = sets.find((s) => s.example);
  const typo = probe ? JSON.parse(JSON.stringify(probe.objects)) : [];
  const buffer = typo.find((o) => o.kind === "StatefulSet" && o.metadata.name === "buffer");
  if (buffer) buffer.spec.template.spec.containers[0].imagePullPolice = "Always";
  const strict = checkStrict([...sets, { name: "(misspelled field)", objects: typo }], here);
  for (const set of sets) report(`${set.name}: strict fields`, strict.get(set.name));
  if (probe) {
    report("strict check reports a misspelled field",
           strict.get("(misspelled field)").some((p) => p.includes("imagePullPolice")) ? [] : ["imagePullPolice was not reported"]);
  }
}

// ---- the checkers themselves catch broken manifests ----
const good = sets.find((s) => s.example);
if (good) {
  report("checkers report every broken variant of " + good.example, runSelfTest(good.objects, (objs, name) => {
    const w = podTemplates(objs).find((p) => p.workload.metadata.name === name);
    return checkArgs(objs, w.owner, w.pod, w.pod.spec.containers[0]);
  }));
}

// ---- kustomize == render ----
function canonical(v) {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === "object") return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical(v[k])]));
  return v;
}
function firstDifference(a, b, at = "") {
  if (JSON.stringify(a) === JSON.stringify(b)) return null;
  if (a && b && typeof a === "object" && typeof b === "object") {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const d = firstDifference(a[k], b[k], `${at}/${k}`);
      if (d) return d;
    }
  }
  return `${at || "/"}: kustomize ${JSON.stringify(a)?.slice(0, 200)} vs render ${JSON.stringify(b)?.slice(0, 200)}`;
}
const key = (o) => `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;
for (const set of sets.filter((s) => s.pair)) {
  const rendered = sets.find((s) => s.example === set.pair);
  if (!rendered) {
    report(`${set.name} == render ${set.pair}`, [`${set.pair} was not rendered`]);
    continue;
  }
  const problems = [];
  const mine = new Map(set.objects.map((o) => [key(o), canonical(o)]));
  const theirs = new Map(rendered.objects.map((o) => [key(o), canonical(o)]));
  for (const k of mine.keys()) if (!theirs.has(k)) problems.push(`${k} only in kustomize`);
  // The render carries the internal token Secret itself; the kustomize sets leave it to the operator.
  for (const k of theirs.keys())
    if (!mine.has(k) && !(k.startsWith("Secret/") && k.endsWith("/zerorl-internal-token")))
      problems.push(`${k} only in render`);
  for (const [k, a] of mine) {
    if (!theirs.has(k)) continue;
    const b = theirs.get(k);
    // The reward spec is the operator's to edit in place (hot swap); only its presence must agree.
    if (k.startsWith("ConfigMap/") && k.endsWith("/zerorl-reward-spec")) {
      if (JSON.stringify(Object.keys(a.data ?? {})) !== JSON.stringify(Object.keys(b.data ?? {})))
        problems.push(`${k}: data keys differ`);
      continue;
    }
    const d = firstDifference(a, b);
    if (d) problems.push(`${k}${d}`);
  }
  report(`${set.name} == render ${set.pair}`, problems);
}

console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed === 0 ? 0 : 1);
