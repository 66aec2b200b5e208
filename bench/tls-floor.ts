/**
 * The reference for the handshake measurement (handshake-bench.ts): a bare node:https server with the
 * settings of a sidecar's inbound port (mesh certificate, client certificate required and verified,
 * TLS 1.2+, node's default session tickets) and no meshgate code, answering 204 to any request. What a
 * handshake costs here is what node and its OpenSSL cost on this machine; the sidecar's figure above it
 * is meshgate's own. Prints the ready line (contract.ts) once listening.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { announceAndStopOnSignal } from './contract.js';

const { values } = parseArgs({ options: { cert: { type: 'string' }, key: { type: 'string' }, ca: { type: 'string' } } });
if (values.cert === undefined || values.key === undefined || values.ca === undefined) throw new Error('usage: tls-floor --cert F --key F --ca F');
const server = createServer(
  {
    cert: readFileSync(values.cert),
    key: readFileSync(values.key),
    ca: readFileSync(values.ca),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
    ALPNProtocols: ['http/1.1'],
  },
  (request, response) => {
    request.resume();
    response.writeHead(204);
    response.end();
  },
);
server.listen(0, '127.0.0.1');
await once(server, 'listening');
announceAndStopOnSignal(server, () => {
  server.close();
});
