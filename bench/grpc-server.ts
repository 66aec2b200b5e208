/**
 * The gRPC upstream of the `grpc-unary` measurement: a @grpc/grpc-js server with one unary method that
 * answers the same 117-byte body as the HTTP upstream, on two listeners — TLS (the client's direct
 * path, comparable with the proxy's TLS listener) and h2c (behind the proxy, as in a mesh).
 * Ready line: {"ports":[tls, h2c]}.
 */
import * as grpc from '@grpc/grpc-js';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { UPSTREAM_BODY, readyLine } from './contract.js';

export const GRPC_BENCH_METHOD = '/bench.Items/Get';

const { values } = parseArgs({ options: { cert: { type: 'string' }, key: { type: 'string' } } });
const body = Buffer.from(UPSTREAM_BODY);
const identity = (value: Buffer): Buffer => value;
const service = {
  get: { path: GRPC_BENCH_METHOD, requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity },
};
const server = new grpc.Server();
server.addService(service, { get: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, body) });

function bind(credentials: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', credentials, (error, port) => (error === null ? resolve(port) : reject(error))));
}

const tlsCredentials = grpc.ServerCredentials.createSsl(null, [{ cert_chain: readFileSync(values.cert ?? ''), private_key: readFileSync(values.key ?? '') }]);
const tlsPort = await bind(tlsCredentials);
const plainPort = await bind(grpc.ServerCredentials.createInsecure());
process.stdout.write(readyLine([tlsPort, plainPort]));
