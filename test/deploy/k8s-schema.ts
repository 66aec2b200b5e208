/**
 * Kubernetes API schema validation for tests (kubernetes-models, generated from the Kubernetes
 * OpenAPI): one validator per built-in kind deploy/ and `meshgate inject` produce. An unknown kind
 * is an error here, so a new manifest cannot slip through unvalidated.
 */
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { ReplicaSet } from 'kubernetes-models/apps/v1/ReplicaSet';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Pod } from 'kubernetes-models/v1/Pod';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';

type Validate = (object: Record<string, unknown>) => void;

const VALIDATORS: Readonly<Record<string, Validate>> = {
  'apps/v1 Deployment': (o) => new Deployment(o).validate(),
  'apps/v1 StatefulSet': (o) => new StatefulSet(o).validate(),
  'apps/v1 DaemonSet': (o) => new DaemonSet(o).validate(),
  'apps/v1 ReplicaSet': (o) => new ReplicaSet(o).validate(),
  'v1 Pod': (o) => new Pod(o).validate(),
  'v1 Service': (o) => new Service(o).validate(),
  'v1 ConfigMap': (o) => new ConfigMap(o).validate(),
  'v1 Secret': (o) => new Secret(o).validate(),
  'v1 Namespace': (o) => new Namespace(o).validate(),
  'v1 ServiceAccount': (o) => new ServiceAccount(o).validate(),
  'policy/v1 PodDisruptionBudget': (o) => new PodDisruptionBudget(o).validate(),
  'autoscaling/v2 HorizontalPodAutoscaler': (o) => new HorizontalPodAutoscaler(o).validate(),
};

export function isKubernetesKind(object: Record<string, unknown>): boolean {
  return `${String(object.apiVersion)} ${String(object.kind)}` in VALIDATORS;
}

/** Throws with the schema's message when `object` is not a valid instance of its apiVersion + kind. */
export function validateKubernetesObject(object: Record<string, unknown>): void {
  const key = `${String(object.apiVersion)} ${String(object.kind)}`;
  const validate = VALIDATORS[key];
  if (validate === undefined) throw new Error(`no Kubernetes schema for ${key}`);
  validate(object);
}
