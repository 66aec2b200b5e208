import t from 'tap';
import { effectiveGrpcTimeoutMs, encodeGrpcMessage, grpcStatusForHttp, grpcTimeoutMs } from '../../gateway/http/grpc.js';

t.test("Envoy's HTTP-to-gRPC status mapping for local replies", async (t) => {
  const mapped = [400, 401, 403, 404, 429, 502, 503, 504, 500].map(grpcStatusForHttp);
  t.same(mapped, [13, 16, 7, 12, 14, 14, 14, 14, 2]);
});

t.test('grpc-timeout parsing and the route timeout cap (max_grpc_timeout)', async (t) => {
  t.equal(grpcTimeoutMs('150m'), 150);
  t.equal(grpcTimeoutMs('2S'), 2000);
  t.equal(grpcTimeoutMs('1H'), 3_600_000);
  t.equal(grpcTimeoutMs('1500u'), 2, 'rounded up');
  t.equal(grpcTimeoutMs('123456789m'), null, 'at most 8 digits');
  t.equal(grpcTimeoutMs('10x'), null);
  t.equal(effectiveGrpcTimeoutMs(0, { 'grpc-timeout': '300m' }), 300, 'no route timeout: the client deadline');
  t.equal(effectiveGrpcTimeoutMs(100, { 'grpc-timeout': '300m' }), 100, 'capped by the route timeout');
  t.equal(effectiveGrpcTimeoutMs(1000, { 'grpc-timeout': '300m' }), 300);
  t.equal(effectiveGrpcTimeoutMs(1000, {}), 1000);
});

t.test('grpc-message is percent-encoded', async (t) => {
  t.equal(encodeGrpcMessage('no route: 100% é'), 'no route: 100%25 %C3%A9');
});
