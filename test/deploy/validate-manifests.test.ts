/**
 * `meshgate validate` on what deploy/ ships: the Kubernetes manifests sit beside (or around) the mesh
 * config, and validate skips every kind that is not a mesh resource with a note instead of failing
 * (the mesh config itself is compiled by manifests.test.ts).
 */
import { readdir, readFile } from 'node:fs/promises';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { join } from 'node:path';
import { runCli } from '../e2e-foundation/fixtures.js';

const BASE = 'deploy/kubernetes/base';

t.test('validate -c deploy/kubernetes/base: every Kubernetes object is skipped with MG0015, and the directory is valid', async (t) => {
  const files = (await readdir(BASE)).filter((name) => /\.ya?ml$/.test(name));
  let objects = 0;
  for (const file of files) {
    for (const document of parseAllDocuments(await readFile(join(BASE, file), 'utf8'))) {
      if (document.toJS() !== null) objects += 1;
    }
  }
  const result = await runCli(['validate', '-c', BASE, '--output', 'json'], 60_000);
  t.equal(result.code, 0, result.stderr);
  const diagnostics = JSON.parse(result.stdout) as { code: string; severity: string }[];
  t.equal(diagnostics.filter((d) => d.code === 'MG0015').length, objects, 'one note per Kubernetes object');
  t.same(diagnostics.filter((d) => d.severity !== 'info'), [], 'no warning or error');
});
