/**
 * Dapr-style service invocation on the outbound listener: `/v1.0/invoke/<app-id>/method/<path>`, or any
 * path with a `dapr-app-id` header (which wins, as in Dapr), calls `<path>` on the service of that app
 * id (what the seed's Go example does through its sidecar). The app id may be `appId.namespace`.
 */
const DAPR_INVOKE = /^\/v1\.0\/invoke\/([^/]+)\/method(\/.*)?$/;

export function daprInvocation(path: string, appIdHeader: string | string[] | undefined): { appId: string; path: string } | null {
  const match = DAPR_INVOKE.exec(path);
  if (typeof appIdHeader === 'string' && appIdHeader !== '') return { appId: appIdHeader.toLowerCase(), path: match === null ? path : (match[2] ?? '/') };
  if (match === null) return null;
  return { appId: (match[1] as string).toLowerCase(), path: match[2] ?? '/' };
}
