// Pod checks: the Restricted Pod Security Standard (Kubernetes v1.32, which
// includes every Baseline control), and zerorl's own hardening on top.
// Each function returns a list of problems ("" none), naming the pod's owner.

const SAFE_SYSCTLS = new Set([
  "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
  "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
  "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
  "net.ipv4.tcp_keepalive_probes",
]);
const RESTRICTED_VOLUMES = new Set([
  "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
]);
const SELINUX_TYPES = new Set([undefined, "", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"]);

function allContainers(spec) {
  return [
    ...(spec.initContainers ?? []).map((c) => ["initContainer", c]),
    ...(spec.containers ?? []).map((c) => ["container", c]),
    ...(spec.ephemeralContainers ?? []).map((c) => ["ephemeralContainer", c]),
  ];
}

export function checkPodSecurity(owner, spec) {
  const out = [];
  const bad = (what) => out.push(`${owner}: ${what}`);
  const psc = spec.securityContext ?? {};
  // Baseline
  for (const f of ["hostNetwork", "hostPID", "hostIPC"]) if (spec[f]) bad(`${f} must not be true`);
  if (psc.windowsOptions?.hostProcess) bad("securityContext.windowsOptions.hostProcess must not be true");
  for (const v of spec.volumes ?? []) {
    if (v.hostPath) bad(`volume ${v.name}: hostPath volumes are not allowed`);
    const types = Object.keys(v).filter((k) => k !== "name");
    for (const t of types) if (!RESTRICTED_VOLUMES.has(t)) bad(`volume ${v.name}: type ${t} is not allowed (restricted)`);
  }
  for (const s of psc.sysctls ?? []) if (!SAFE_SYSCTLS.has(s.name)) bad(`sysctl ${s.name} is not in the safe set`);
  if (!SELINUX_TYPES.has(psc.seLinuxOptions?.type)) bad(`seLinuxOptions.type ${psc.seLinuxOptions.type} is not allowed`);
  if (psc.seLinuxOptions?.user || psc.seLinuxOptions?.role) bad("seLinuxOptions.user/role must not be set");
  if (psc.appArmorProfile && !["RuntimeDefault", "Localhost"].includes(psc.appArmorProfile.type))
    bad(`appArmorProfile ${psc.appArmorProfile.type} is not allowed`);
  // Restricted: pod level
  if (psc.runAsUser === 0) bad("securityContext.runAsUser must not be 0");
  const podSeccomp = psc.seccompProfile?.type;
  if (podSeccomp !== undefined && !["RuntimeDefault", "Localhost"].includes(podSeccomp))
    bad(`securityContext.seccompProfile.type ${podSeccomp} is not allowed`);

  for (const [kind, c] of allContainers(spec)) {
    const who = `${kind} ${c.name}`;
    const sc = c.securityContext ?? {};
    if (sc.privileged) bad(`${who}: privileged must not be true`);
    if (sc.windowsOptions?.hostProcess) bad(`${who}: hostProcess must not be true`);
    for (const p of c.ports ?? []) if (p.hostPort) bad(`${who}: hostPort ${p.hostPort} is not allowed`);
    if (sc.procMount && sc.procMount !== "Default") bad(`${who}: procMount must be Default`);
    if (!SELINUX_TYPES.has(sc.seLinuxOptions?.type)) bad(`${who}: seLinuxOptions.type is not allowed`);
    if (sc.seLinuxOptions?.user || sc.seLinuxOptions?.role) bad(`${who}: seLinuxOptions.user/role must not be set`);
    if (sc.appArmorProfile && !["RuntimeDefault", "Localhost"].includes(sc.appArmorProfile.type))
      bad(`${who}: appArmorProfile ${sc.appArmorProfile.type} is not allowed`);
    if (sc.allowPrivilegeEscalation !== false) bad(`${who}: securityContext.allowPrivilegeEscalation must be false`);
    const nonRoot = sc.runAsNonRoot ?? psc.runAsNonRoot;
    if (nonRoot !== true) bad(`${who}: runAsNonRoot must be true (pod or container)`);
    if (sc.runAsUser === 0) bad(`${who}: runAsUser must not be 0`);
    const seccomp = sc.seccompProfile?.type ?? podSeccomp;
    if (!["RuntimeDefault", "Localhost"].includes(seccomp))
      bad(`${who}: seccompProfile must be RuntimeDefault or Localhost (pod or container), got ${seccomp}`);
    const caps = sc.capabilities ?? {};
    if (!(caps.drop ?? []).includes("ALL")) bad(`${who}: capabilities.drop must include ALL`);
    for (const a of caps.add ?? []) if (a !== "NET_BIND_SERVICE") bad(`${who}: capability ${a} may not be added`);
  }
  return out;
}

// zerorl's own rules for its pods, stricter than Restricted.
export function checkHardening(owner, spec) {
  const out = [];
  const bad = (what) => out.push(`${owner}: ${what}`);
  if (spec.automountServiceAccountToken !== false) bad("automountServiceAccountToken must be false (no API access needed)");
  for (const v of spec.volumes ?? []) {
    if (v.secret && v.secret.optional) bad(`volume ${v.name}: the admin token Secret must not be optional`);
  }
  for (const c of spec.containers ?? []) {
    const who = `container ${c.name}`;
    if (c.securityContext?.readOnlyRootFilesystem !== true) bad(`${who}: readOnlyRootFilesystem must be true`);
    for (const m of c.volumeMounts ?? []) {
      if (m.subPath || m.subPathExpr) bad(`${who}: mount ${m.name} uses subPath (ConfigMap edits would not propagate)`);
    }
    if (!(c.volumeMounts ?? []).some((m) => m.mountPath === "/tmp")) bad(`${who}: needs a writable /tmp volume`);
    const req = c.resources?.requests ?? {};
    const lim = c.resources?.limits ?? {};
    if (!req.cpu || !req.memory) bad(`${who}: resources.requests.cpu and .memory are required`);
    if (!lim.memory) bad(`${who}: resources.limits.memory is required`);
    for (const [k, v] of Object.entries(lim)) {
      if (k.includes("/") && String(req[k]) !== String(v)) bad(`${who}: ${k} request ${req[k]} != limit ${v}`);
    }
    const health = (c.ports ?? []).find((p) => p.name === "health");
    if (!health) bad(`${who}: no containerPort named "health"`);
    for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
      const p = c[probe];
      if (!p) bad(`${who}: ${probe} is missing`);
      else if (!p.grpc) bad(`${who}: ${probe} must be a gRPC health probe`);
      else if (health && p.grpc.port !== health.containerPort)
        bad(`${who}: ${probe} probes port ${p.grpc.port}, not the health port ${health.containerPort}`);
    }
    if (!c.image || /\s/.test(c.image)) bad(`${who}: image "${c.image}" is not an image reference`);
  }
  return out;
}
