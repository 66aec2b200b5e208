/** gRPC status names (as Istio's `abort.grpcStatus` takes them) to their numeric codes. */
const GRPC_STATUS_CODES: Readonly<Record<string, number>> = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
};

/** Unknown names map to UNKNOWN (2); numeric strings pass through. */
export function grpcStatusCode(name: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  return GRPC_STATUS_CODES[name.toUpperCase()] ?? 2;
}
