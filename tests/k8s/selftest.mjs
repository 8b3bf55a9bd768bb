// The checkers' own test: each broken variant of a good manifest set must be
// reported by the checker meant to catch it (so a check that silently passes
// everything fails here). Returns the variants that went unreported.
import { checkHardening, checkPodSecurity } from "./pod_security.mjs";
import { checkSchema } from "./schema.mjs";
import { checkWiring } from "./wiring.mjs";

const clone = (v) => JSON.parse(JSON.stringify(v));
const workload = (objs, name) => objs.find((o) => ["Deployment", "StatefulSet"].includes(o.kind) && o.metadata.name === name);
const pod = (objs, name) => workload(objs, name).spec.template.spec;
const container = (objs, name) => pod(objs, name).containers[0];

const podChecks = (objs) =>
  objs.filter((o) => ["Deployment", "StatefulSet"].includes(o.kind))
      .flatMap((o) => [...checkPodSecurity(o.kind, o.spec.template.spec), ...checkHardening(o.kind, o.spec.template.spec)]);

const VARIANTS = [
  ["schema: replicas as a string", (o) => { workload(o, "rollout").spec.replicas = "2"; }, (o) => o.flatMap(checkSchema)],
  ["schema: container without a name", (o) => { delete container(o, "buffer").name; }, (o) => o.flatMap(checkSchema)],
  ["schema: unknown kind", (o) => { o.push({ apiVersion: "v1", kind: "Pod2", metadata: { name: "x" } }); }, (o) => o.flatMap(checkSchema)],
  ["schema: port out of type", (o) => { o.find((x) => x.kind === "Service").spec.ports[0].port = "grpc"; }, (o) => o.flatMap(checkSchema)],
  ["pss: privileged", (o) => { container(o, "reward").securityContext.privileged = true; }, podChecks],
  ["pss: privilege escalation allowed", (o) => { delete container(o, "learner").securityContext.allowPrivilegeEscalation; }, podChecks],
  ["pss: runs as root", (o) => { pod(o, "buffer").securityContext.runAsUser = 0; }, podChecks],
  ["pss: runAsNonRoot unset", (o) => { delete pod(o, "rollout").securityContext.runAsNonRoot; delete container(o, "rollout").securityContext.runAsNonRoot; }, podChecks],
  ["pss: capability added", (o) => { container(o, "reward").securityContext.capabilities.add = ["SYS_ADMIN"]; }, podChecks],
  ["pss: capabilities not dropped", (o) => { container(o, "reward").securityContext.capabilities.drop = []; }, podChecks],
  ["pss: seccomp unconfined", (o) => { pod(o, "orchestrator").securityContext.seccompProfile.type = "Unconfined"; }, podChecks],
  ["pss: hostNetwork", (o) => { pod(o, "orchestrator").hostNetwork = true; }, podChecks],
  ["pss: hostPath volume", (o) => { pod(o, "learner").volumes.push({ name: "h", hostPath: { path: "/" } }); }, podChecks],
  ["pss: hostPort", (o) => { container(o, "rollout").ports[0].hostPort = 80; }, podChecks],
  ["hardening: writable root filesystem", (o) => { container(o, "rollout").securityContext.readOnlyRootFilesystem = false; }, podChecks],
  ["hardening: no liveness probe", (o) => { delete container(o, "buffer").livenessProbe; }, podChecks],
  ["hardening: probe on the wrong port", (o) => { container(o, "buffer").readinessProbe.grpc.port = 1; }, podChecks],
  ["hardening: subPath mount", (o) => { container(o, "reward").volumeMounts[0].subPath = "run.yaml"; }, podChecks],
  ["hardening: no memory limit", (o) => { delete container(o, "reward").resources.limits.memory; }, podChecks],
  ["wiring: GPU count differs from the run config", (o) => { container(o, "rollout").resources.limits["nvidia.com/gpu"] = 3; }, checkWiring],
  ["wiring: replicas differ from the run config", (o) => { workload(o, "rollout").spec.replicas = 5; }, checkWiring],
  ["wiring: selector does not match", (o) => { workload(o, "buffer").spec.selector.matchLabels.x = "y"; }, checkWiring],
  ["wiring: service targets an unnamed port", (o) => { o.find((x) => x.kind === "Service").spec.ports[0].targetPort = "nope"; }, checkWiring],
  ["wiring: reward egress allowed", (o) => { o.find((x) => x.kind === "NetworkPolicy").spec.egress = [{}]; }, checkWiring],
  ["wiring: missing ConfigMap", (o) => { o.splice(o.findIndex((x) => x.metadata.name === "zerorl-reward-spec"), 1); }, checkWiring],
  ["wiring: wrong namespace", (o) => { workload(o, "learner").metadata.namespace = "other"; }, checkWiring],
  ["wiring: image differs from the run config", (o) => { container(o, "learner").image = "other:1"; }, checkWiring],
  ["wiring: internal token Secret not mounted", (o) => {
    const p = pod(o, "rollout");
    const v = p.volumes.find((x) => x.secret?.secretName === "zerorl-internal-token");
    p.volumes = p.volumes.filter((x) => x !== v);
    container(o, "rollout").volumeMounts = container(o, "rollout").volumeMounts.filter((m) => m.name !== v.name);
  }, checkWiring],
];

export function runSelfTest(goodObjects, checkArgsOf) {
  const unreported = [];
  const baseline = [...goodObjects.flatMap(checkSchema), ...podChecks(goodObjects), ...checkWiring(goodObjects)];
  if (baseline.length) return [`the good set is not clean: ${baseline[0]}`];
  for (const [name, mutate, check] of VARIANTS) {
    const objs = clone(goodObjects);
    mutate(objs);
    if (check(objs).length === 0) unreported.push(`${name}: not reported`);
  }
  // The args check: a role the binary does not know must fail `zerorl serve --check`.
  const objs = clone(goodObjects);
  container(objs, "reward").args[1] = "bogus";
  if (checkArgsOf(objs, "reward").length === 0) unreported.push("args: unknown role accepted");
  return unreported;
}
