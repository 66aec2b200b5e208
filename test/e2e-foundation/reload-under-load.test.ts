/**
 * Reloads must not drop traffic: several keep-alive clients send requests without pause while 20
 * reloads go through POST /reload, every other one with an invalid config. Every request must be
 * answered 200 by the upstream, and the generation must advance by exactly the 10 valid configs
 * (each adds a distinct response header value, so the switch is observable, and lists one more host
 * on the Gateway server, which must not reopen its listener).
 */
import http from 'node:http';
import t from 'tap';
import { configDir, freePort, startGateway, startUpstream } from '../helpers/gateway.js';
import { ingressYaml, invalidIngressYaml, json, request } from './fixtures.js';

const CONNECTIONS = 6;
const MAX_REQUESTS = 3000;
const RELOADS = 20;
const PAUSE_BETWEEN_RELOADS_MS = 60;

t.test('20 reloads (10 invalid) under keep-alive load: no failed request, generation +10', async (t) => {
  const upstream = await startUpstream();
  const config = { adminPort: await freePort(), gatewayPort: await freePort(), upstreamPort: upstream.port };
  const dir = await configDir(ingressYaml({ ...config, version: 'v0' }));
  const gateway = await startGateway(dir.file);
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  t.teardown(async () => {
    agent.destroy();
    await gateway.stop();
    await upstream.close();
    await dir.remove();
  });
  const admin = `http://127.0.0.1:${config.adminPort}`;
  const startGeneration = gateway.runtime.current().generation;

  let reloading = true;
  let sent = 0;
  const failures: string[] = [];
  const versionsSeen = new Set<string>();
  const worker = async (): Promise<void> => {
    while (reloading && sent < MAX_REQUESTS) {
      sent += 1;
      try {
        const response = await request(`http://127.0.0.1:${config.gatewayPort}/load/${sent}`, { agent });
        const fromUpstream = response.status === 200 && (JSON.parse(response.body) as { upstream?: string }).upstream === 'upstream';
        if (!fromUpstream) failures.push(`status ${response.status}: ${response.body.slice(0, 200)}`);
        versionsSeen.add(String(response.headers['x-config-version']));
      } catch (error) {
        failures.push(`error: ${(error as Error).message}`);
      }
    }
  };
  const load = Promise.all(Array.from({ length: CONNECTIONS }, worker));

  const outcomes: { ok: boolean; status: number }[] = [];
  for (let i = 1; i <= RELOADS; i++) {
    const valid = i % 2 === 0;
    const gatewayHosts = ['*', ...Array.from({ length: i }, (_, n) => `h${n}.example.com`)];
    await dir.write(valid ? ingressYaml({ ...config, version: `v${i}`, gatewayHosts }) : invalidIngressYaml({ ...config, version: `v${i}` }));
    const { status, body } = await json(`${admin}/reload`, 'POST');
    outcomes.push({ ok: body.ok === true, status });
    await new Promise((resolve) => setTimeout(resolve, PAUSE_BETWEEN_RELOADS_MS));
  }
  reloading = false;
  await load;

  t.same(failures, [], 'no request failed');
  t.ok(sent >= 300, `${sent} requests were sent during the reloads`);
  t.same(
    outcomes.map((o) => o.status),
    Array.from({ length: RELOADS }, (_, i) => ((i + 1) % 2 === 0 ? 200 : 422)),
    'valid reloads applied (200), invalid ones rejected (422)',
  );
  t.equal(gateway.runtime.current().generation, startGeneration + RELOADS / 2, 'generation advanced by the valid reloads only');
  t.equal((await request(`http://127.0.0.1:${config.gatewayPort}/after`)).headers['x-config-version'], `v${RELOADS}`, 'the last valid config serves');
  t.ok(versionsSeen.size >= 3, `responses came from several configs (${[...versionsSeen].join(', ')})`);
  t.notOk([...versionsSeen].some((v) => Number(v.slice(1)) % 2 === 1), 'no response ever came from an invalid config');
});
