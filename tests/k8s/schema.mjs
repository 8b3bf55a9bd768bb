// Schema check: each object against the Kubernetes OpenAPI schema, through the
// validators that kubernetes-models generates from it (types, required fields,
// formats, enums). Kinds outside the groups below are reported, not skipped.
import * as apps from "kubernetes-models/apps/v1";
import * as networking from "kubernetes-models/networking.k8s.io/v1";
import * as policy from "kubernetes-models/policy/v1";
import * as core from "kubernetes-models/v1";

const GROUPS = { v1: core, "apps/v1": apps, "networking.k8s.io/v1": networking, "policy/v1": policy };

export function checkSchema(obj) {
  const name = `${obj?.kind}/${obj?.metadata?.name}`;
  const group = GROUPS[obj?.apiVersion];
  const Model = group?.[obj?.kind];
  if (typeof Model !== "function") return [`${name}: no schema for apiVersion ${obj?.apiVersion} kind ${obj?.kind}`];
  try {
    new Model(obj).validate();
  } catch (e) {
    return [`${name}: ${e.message.replace(/\s+/g, " ")}`];
  }
  return [];
}
