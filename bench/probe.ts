/**
 * Before loading a target, send a few requests exactly as the load generator will and check each one
 * reached the upstream (200 + the upstream's body). A misrouted table would otherwise benchmark
 * 404s at an impressive rate. The answering listener of each response shows the canary split.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { LISTENER_HEADER, UPSTREAM_BODY } from './contract.js';

export interface ProbeResult {
  /** Responses per upstream listener index ("0" = v1, "1" = v2 for the canary targets). */
  readonly byListener: Readonly<Record<string, number>>;
}

interface ProbeResponse {
  readonly status: number;
  readonly body: string;
  readonly listener: string;
}

const PROBE_TIMEOUT_MS = 5_000;

function get(url: URL, host: string | null, headers: Readonly<Record<string, string>>, agent: HttpAgent): Promise<ProbeResponse> {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const request = send(url, { agent, headers: host === null ? { ...headers } : { ...headers, host }, timeout: PROBE_TIMEOUT_MS, rejectUnauthorized: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => {
        const listener = response.headers[LISTENER_HEADER];
        resolve({ status: response.statusCode ?? 0, body, listener: typeof listener === 'string' ? listener : 'none' });
      });
    });
    request.on('timeout', () => request.destroy(new Error(`probe timed out after ${PROBE_TIMEOUT_MS} ms`)));
    request.on('error', reject);
    request.end();
  });
}

export async function probe(urlText: string, host: string | null, requests: number, headers: Readonly<Record<string, string>> = {}): Promise<ProbeResult> {
  const url = new URL(urlText);
  const agent = url.protocol === 'https:' ? new HttpsAgent({ keepAlive: true, maxSockets: 1 }) : new HttpAgent({ keepAlive: true, maxSockets: 1 });
  const byListener: Record<string, number> = {};
  try {
    for (let index = 0; index < requests; index += 1) {
      const response = await get(url, host, headers, agent);
      if (response.status !== 200 || response.body !== UPSTREAM_BODY) {
        throw new Error(`probe ${urlText} (Host: ${host ?? url.host}) got ${response.status}: ${response.body.slice(0, 300)}`);
      }
      byListener[response.listener] = (byListener[response.listener] ?? 0) + 1;
    }
  } finally {
    agent.destroy();
  }
  return { byListener };
}
