// Wiring check of one manifest set: the objects refer to each other correctly
// and agree with the run config they carry (ConfigMap zerorl-config run.yaml).
import { parse as parseYaml } from "yaml";

// Created by the operator (README); `zerorl k8s render` also renders zerorl-internal-token.
const EXTERNAL_SECRETS = new Set(["zerorl-admin-token", "zerorl-internal-token"]);
const INTERNAL_TOKEN_SECRET = "zerorl-internal-token";

function matches(selector, labels) {
  return Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);
}

export function checkWiring(objects) {
  const out = [];
  const namespaces = objects.filter((o) => o.kind === "Namespace");
  if (namespaces.length !== 1) return [`expected exactly one Namespace, found ${namespaces.length}`];
  const ns = namespaces[0];
  if (ns.metadata.labels?.["pod-security.kubernetes.io/enforce"] !== "restricted")
    out.push(`Namespace ${ns.metadata.name}: label pod-security.kubernetes.io/enforce must be "restricted"`);
  for (const o of objects) {
    if (o.kind !== "Namespace" && o.metadata.namespace !== ns.metadata.name)
      out.push(`${o.kind}/${o.metadata.name}: namespace ${o.metadata.namespace}, expected ${ns.metadata.name}`);
  }
  const byKind = (k) => objects.filter((o) => o.kind === k);
  const workloads = objects.filter((o) => ["Deployment", "StatefulSet"].includes(o.kind));
  const services = byKind("Service");
  const configMaps = new Set(byKind("ConfigMap").map((o) => o.metadata.name));
  const claims = new Set(byKind("PersistentVolumeClaim").map((o) => o.metadata.name));
  const secrets = new Set(byKind("Secret").map((o) => o.metadata.name));
  for (const s of byKind("Secret")) {
    if (s.metadata.name === INTERNAL_TOKEN_SECRET && !(s.stringData?.token || s.data?.token))
      out.push(`Secret/${s.metadata.name}: no token`);
  }
  const config = byKind("ConfigMap").find((o) => o.metadata.name === "zerorl-config");
  if (!config?.data?.["run.yaml"]) return [...out, "ConfigMap zerorl-config with run.yaml is missing"];
  const run = parseYaml(config.data["run.yaml"]) ?? {};
  const k8s = run.kubernetes ?? {};

  for (const w of workloads) {
    const name = `${w.kind}/${w.metadata.name}`;
    const labels = w.spec.template.metadata?.labels;
    if (!matches(w.spec.selector?.matchLabels, labels)) out.push(`${name}: selector does not match its pod labels`);
    const spec = w.spec.template.spec;
    const role = labels?.["app.kubernetes.io/component"];
    for (const c of spec.containers) {
      if (c.args?.[1] !== role) out.push(`${name}: serves role ${c.args?.[1]} but its component label is ${role}`);
    }
    const claimTemplates = new Set((w.spec.volumeClaimTemplates ?? []).map((t) => t.metadata.name));
    for (const v of spec.volumes ?? []) {
      if (v.configMap && !configMaps.has(v.configMap.name)) out.push(`${name}: ConfigMap ${v.configMap.name} is not defined`);
      if (v.secret && !EXTERNAL_SECRETS.has(v.secret.secretName) && !secrets.has(v.secret.secretName))
        out.push(`${name}: unknown Secret ${v.secret.secretName}`);
      const claim = v.persistentVolumeClaim?.claimName;
      if (claim && !claims.has(claim) && claim !== k8s.data_claim)
        out.push(`${name}: PersistentVolumeClaim ${claim} is neither defined nor kubernetes.data_claim`);
    }
    for (const c of spec.containers) {
      for (const m of c.volumeMounts ?? []) {
        if (!(spec.volumes ?? []).some((v) => v.name === m.name) && !claimTemplates.has(m.name))
          out.push(`${name}: mount ${m.name} has no volume`);
      }
      if (!c.volumeMounts?.some((m) => m.mountPath === "/etc/zerorl/config")) out.push(`${name}: run config not mounted`);
      // Actor calls need the deployment's internal token (common/auth.h): every
      // pod mounts its Secret where run.yaml's server.internal_token_file points.
      const tokenFile = run.server?.internal_token_file;
      const internalVolume = (spec.volumes ?? []).find((v) => v.secret?.secretName === INTERNAL_TOKEN_SECRET);
      const internalMount = internalVolume && c.volumeMounts?.find((m) => m.name === internalVolume.name);
      if (!tokenFile) out.push(`${name}: run.yaml has no server.internal_token_file (actor calls would be open)`);
      else if (!internalMount) out.push(`${name}: Secret ${INTERNAL_TOKEN_SECRET} is not mounted`);
      else if (tokenFile !== `${internalMount.mountPath}/token`)
        out.push(`${name}: server.internal_token_file ${tokenFile} is not the mounted ${internalMount.mountPath}/token`);
    }
    if (w.kind === "StatefulSet") {
      const svc = services.find((s) => s.metadata.name === w.spec.serviceName);
      if (!svc || svc.spec.clusterIP !== "None") out.push(`${name}: serviceName ${w.spec.serviceName} is not a headless Service`);
    }
    // The workloads agree with the run config's kubernetes: section.
    const c0 = spec.containers[0];
    if (k8s.image && c0.image !== k8s.image) out.push(`${name}: image ${c0.image} != kubernetes.image ${k8s.image}`);
    const gpus = Number(c0.resources?.limits?.["nvidia.com/gpu"] ?? 0);
    const wantGpus = { rollout: k8s.rollout_gpus ?? 0, learner: k8s.learner_gpus ?? 0 }[role] ?? 0;
    if (gpus !== wantGpus) out.push(`${name}: ${gpus} GPUs, the run config asks for ${wantGpus}`);
    const wantReplicas = { rollout: k8s.rollout_replicas ?? 2, reward: k8s.reward_replicas ?? 2 }[role] ?? 1;
    if ((w.spec.replicas ?? 1) !== wantReplicas)
      out.push(`${name}: ${w.spec.replicas} replicas, the run config asks for ${wantReplicas}`);
    // The orchestrator's worker lists name every rollout and reward pod.
    if (role === "rollout" || role === "reward") {
      const svc = `${w.spec.serviceName}.${ns.metadata.name}.svc.${k8s.cluster_domain ?? "cluster.local"}`;
      const port = run[role]?.listen_port ?? { rollout: 50052, reward: 50053 }[role];
      const want = Array.from({ length: wantReplicas }, (_, i) => `${w.metadata.name}-${i}.${svc}:${port}`);
      if (JSON.stringify(run[role]?.workers ?? []) !== JSON.stringify(want))
        out.push(`${name}: ${role}.workers ${JSON.stringify(run[role]?.workers)} != its pods ${JSON.stringify(want)}`);
    }
    if (role === "reward" && configMaps.has("zerorl-reward-spec") &&
        !spec.volumes.some((v) => v.configMap?.name === "zerorl-reward-spec"))
      out.push(`${name}: the reward-spec ConfigMap is not mounted`);
  }
  for (const s of services) {
    const pods = workloads.filter((w) => matches(s.spec.selector, w.spec.template.metadata?.labels));
    if (pods.length === 0) { out.push(`Service/${s.metadata.name}: selects no pods`); continue; }
    for (const p of s.spec.ports ?? []) {
      const named = pods.some((w) => w.spec.template.spec.containers.some(
        (c) => (c.ports ?? []).some((cp) => cp.name === p.targetPort || cp.containerPort === p.targetPort)));
      if (!named) out.push(`Service/${s.metadata.name}: targetPort ${p.targetPort} is no containerPort of its pods`);
    }
  }
  for (const o of [...byKind("PodDisruptionBudget"), ...byKind("NetworkPolicy")]) {
    const sel = o.spec.selector?.matchLabels ?? o.spec.podSelector?.matchLabels;
    if (!workloads.some((w) => matches(sel, w.spec.template.metadata?.labels)))
      out.push(`${o.kind}/${o.metadata.name}: selects no pods`);
  }
  const reward = workloads.find((w) => w.spec.template.metadata?.labels?.["app.kubernetes.io/component"] === "reward");
  const isolated = byKind("NetworkPolicy").some((p) =>
    reward && matches(p.spec.podSelector?.matchLabels, reward.spec.template.metadata.labels) &&
    (p.spec.policyTypes ?? []).includes("Egress") && (p.spec.egress ?? []).length === 0);
  if (!isolated) out.push("no NetworkPolicy denies all egress of the reward pods");
  return out;
}
