/**
 * Signs the request sent upstream for a partner that verifies HMAC signatures: HMAC-SHA256 over
 * `METHOD\npath?query\nhost\ntimestamp` with a shared secret read from a file, sent as
 * `x-signature: keyId=<id>,signature=<base64>` with `x-signature-timestamp: <unix seconds>`.
 * Client-sent signature headers are replaced, so a client cannot forge one.
 */
import { createHmac } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Type, definePlugin } from 'meshgate/plugin-api';
import type { PluginRequest } from 'meshgate/plugin-api';

export const SIGNATURE_HEADER = 'x-signature';
export const TIMESTAMP_HEADER = 'x-signature-timestamp';

/** The string both sides sign; a verifier rebuilds it from the request it received. */
export function canonicalString(method: string, pathAndQuery: string, host: string, timestamp: string): string {
  return `${method.toUpperCase()}\n${pathAndQuery}\n${host.toLowerCase()}\n${timestamp}`;
}

export function sign(secret: Buffer, canonical: string): string {
  return createHmac('sha256', secret).update(canonical).digest('base64');
}

interface SigningState {
  readonly keyId: string;
  readonly secret: Buffer;
}

function pathAndQuery(request: PluginRequest): string {
  const { path, query } = request.attributes;
  return query === '' ? path : `${path}?${query}`;
}

export default definePlugin({
  configSchema: Type.Object(
    {
      keyId: Type.String({ minLength: 1, description: 'Identifies the secret to the verifier.' }),
      secretFile: Type.String({ minLength: 1, description: 'File holding the shared secret (relative to the config directory); trailing newlines are ignored.' }),
    },
    { additionalProperties: false },
  ),
  async compile(setup): Promise<SigningState> {
    const file = resolve(setup.configDirectory, setup.config.secretFile);
    const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
      setup.problem(`cannot read ${file}: ${error.code ?? error.message}`, ['secretFile']);
      return '';
    });
    const secret = Buffer.from(text.replace(/[\r\n]+$/, ''), 'utf8');
    if (text !== '' && secret.length < 16) setup.problem('the secret must be at least 16 bytes', ['secretFile']);
    return { keyId: setup.config.keyId, secret };
  },
  onRequest(request, state) {
    const timestamp = String(Math.floor(Date.now() / 1000));
    const canonical = canonicalString(request.attributes.method, pathAndQuery(request), request.attributes.host, timestamp);
    request.setRequestHeader(TIMESTAMP_HEADER, timestamp);
    request.setRequestHeader(SIGNATURE_HEADER, `keyId=${state.keyId},signature=${sign(state.secret, canonical)}`);
  },
});
