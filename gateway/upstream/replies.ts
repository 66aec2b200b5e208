/** The local replies the upstream layer produces (docs/routing.md#local-replies, docs/observability.md), with Envoy's bodies and details. */
import type { LocalReply } from '../pipeline/types.js';

const RESET_PREFIX = 'upstream connect error or disconnect/reset before headers. reset reason:';

export const NO_CLUSTER: LocalReply = Object.freeze({ status: 503, flag: 'NC', details: 'cluster_not_found', message: '' });
export const NO_HEALTHY_UPSTREAM: LocalReply = Object.freeze({
  status: 503,
  flag: 'UH',
  details: 'no_healthy_upstream',
  message: 'no healthy upstream',
});
export const CONNECT_FAILURE: LocalReply = Object.freeze({
  status: 503,
  flag: 'UF',
  details: 'upstream_reset_before_response_started{connection_failure}',
  message: `${RESET_PREFIX} connection failure`,
});
export const CONNECTION_TERMINATED: LocalReply = Object.freeze({
  status: 503,
  flag: 'UC',
  details: 'upstream_reset_before_response_started{connection_termination}',
  message: `${RESET_PREFIX} connection termination`,
});
export const OVERFLOW: LocalReply = Object.freeze({
  status: 503,
  flag: 'UO',
  details: 'upstream_reset_before_response_started{overflow}',
  message: `${RESET_PREFIX} overflow`,
});
export const OVERFLOW_HEADERS: Readonly<Record<string, string>> = Object.freeze({ 'x-envoy-overloaded': 'true' });
export const ROUTE_TIMEOUT: LocalReply = Object.freeze({
  status: 504,
  flag: 'UT',
  details: 'upstream_response_timeout',
  message: 'upstream request timeout',
});
export const PER_TRY_TIMEOUT: LocalReply = Object.freeze({
  status: 504,
  flag: 'UT',
  details: 'upstream_per_try_timeout',
  message: 'upstream request timeout',
});
/** The client went away: nobody reads this reply, it exists for the access log (Envoy logs code 0, flag DC). */
export const DOWNSTREAM_DISCONNECT: LocalReply = Object.freeze({
  status: 499,
  flag: 'DC',
  details: 'downstream_remote_disconnect',
  message: '',
});
