/**
 * OCSP stapling (RFC 6066 §8, RFC 6960) for the HTTPS listeners: when a client asks for the
 * certificate's status and the certificate names an OCSP responder (authorityInfoAccess), the listener
 * staples a response fetched from that responder, so clients need not contact it themselves.
 *
 * Responses are fetched on demand (the first handshake that asks waits at most FIRST_FETCH_WAIT_MS),
 * cached per certificate, refreshed in the background once half their validity has passed, and never
 * stapled past their nextUpdate. A responder that fails is retried after RETRY_AFTER_FAILURE_MS;
 * meanwhile the cached response is stapled while still valid, otherwise none (the handshake goes on
 * without a staple, as it would without a responder). The response's signature is the client's to
 * check; the listener checks that it is a successful basic response about this very certificate.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { Logger } from 'pino';
import { parseCertificate } from '../identity/certificate.js';
import { TAG, children, contents, decodeOid, decodeTime, element, expectTag, nullValue, octetString, oid, readSingle, sequence } from '../identity/der.js';
import type { Element } from '../identity/der.js';

export type OcspLogger = Pick<Logger, 'info' | 'warn'>;

export type OcspCallback = (error: Error | null, response?: Buffer) => void;

export interface OcspStapler {
  /** Handler of the TLS server's `OCSPRequest` event. */
  readonly onOcspRequest: (certificate: Buffer, issuer: Buffer | null, callback: OcspCallback) => void;
  close(): void;
}

export interface OcspStaplerOptions {
  readonly logger: OcspLogger;
  readonly now?: () => number;
}

const SHA1 = '1.3.14.3.2.26';
const OCSP_BASIC = '1.3.6.1.5.5.7.48.1.1';
const TAG_ENUMERATED = 0x0a;
/** The first handshake asking for a certificate's status waits this long for the responder. */
const FIRST_FETCH_WAIT_MS = 1000;
const FETCH_TIMEOUT_MS = 5000;
const RETRY_AFTER_FAILURE_MS = 60_000;
/** A response without nextUpdate ("newer information is always available") is reused this long. */
const VALIDITY_WITHOUT_NEXT_UPDATE_MS = 3_600_000;
const MAX_RESPONSE_BYTES = 64 * 1024;
/** Distinct certificates remembered; rotation makes old entries useless. */
const MAX_ENTRIES = 64;

interface Staple {
  readonly der: Buffer;
  readonly refreshAtMs: number;
  readonly expiresAtMs: number;
}

interface Entry {
  /** null: the certificate names no responder, or its issuer is unknown: never staple. */
  readonly target: { readonly url: string; readonly request: Buffer; readonly serial: Buffer } | null;
  staple: Staple | null;
  fetching: Promise<void> | null;
  retryAtMs: number;
}

function certIdSerial(bytes: Uint8Array, certId: Element | undefined): Buffer {
  const [, , , serial] = children(bytes, expectTag(certId, TAG.SEQUENCE, 'CertID'));
  return Buffer.from(contents(bytes, expectTag(serial, TAG.INTEGER, 'serialNumber')));
}

/** The OCSPRequest for one certificate (RFC 6960 §4.1.1), CertID hashed with SHA-1 as every responder accepts. */
export function buildOcspRequest(certificate: Uint8Array, issuer: Uint8Array): { readonly request: Buffer; readonly serial: Buffer; readonly url: string | null } {
  const leaf = parseCertificate(certificate);
  const issuing = parseCertificate(issuer);
  const sha1 = (data: Uint8Array): Buffer => createHash('sha1').update(data).digest();
  const serial = Buffer.from(leaf.serialNumber);
  const id = sequence(sequence(oid(SHA1), nullValue()), octetString(sha1(issuing.subjectDer)), octetString(sha1(issuing.subjectPublicKey)), element(TAG.INTEGER, serial));
  return { request: sequence(sequence(sequence(sequence(id)))), serial, url: leaf.ocspResponderUrls.find((url) => url.startsWith('http://')) ?? null };
}

/**
 * Checks an OCSPResponse (RFC 6960 §4.2.1): successful, basic, and holding a SingleResponse for `serial`.
 * Returns its validity window, or a reason.
 */
export function inspectOcspResponse(der: Uint8Array, serial: Uint8Array): { readonly thisUpdate: Date; readonly nextUpdate: Date | null; readonly status: 'good' | 'revoked' | 'unknown' } | string {
  try {
    const [status, bytes] = children(der, expectTag(readSingle(der), TAG.SEQUENCE, 'OCSPResponse'));
    const code = contents(der, expectTag(status, TAG_ENUMERATED, 'responseStatus'))[0];
    if (code !== 0) return `responder answered status ${String(code)} (not successful)`;
    const [type, response] = children(der, expectTag(children(der, expectTag(bytes, 0xa0, 'responseBytes'))[0], TAG.SEQUENCE, 'ResponseBytes'));
    if (decodeOid(contents(der, expectTag(type, TAG.OID, 'responseType'))) !== OCSP_BASIC) return 'not a basic OCSP response';
    const basic = contents(der, expectTag(response, TAG.OCTET_STRING, 'response'));
    const [data] = children(basic, expectTag(readSingle(basic), TAG.SEQUENCE, 'BasicOCSPResponse'));
    const fields = children(basic, expectTag(data, TAG.SEQUENCE, 'ResponseData'));
    // version [0] is optional; then responderID ([1] or [2]), producedAt, responses.
    const responses = fields[fields[0]?.tag === 0xa0 ? 3 : 2];
    for (const single of children(basic, expectTag(responses, TAG.SEQUENCE, 'responses'))) {
      const [id, certStatus, thisUpdate, maybeNext] = children(basic, expectTag(single, TAG.SEQUENCE, 'SingleResponse'));
      if (!certIdSerial(basic, id).equals(serial)) continue;
      const state = certStatus?.tag === 0x80 ? 'good' : certStatus?.tag === 0xa1 ? 'revoked' : 'unknown';
      const next = maybeNext?.tag === 0xa0 ? decodeTime(basic, expectTag(children(basic, maybeNext)[0], TAG.GENERALIZED_TIME, 'nextUpdate')) : null;
      return { thisUpdate: decodeTime(basic, expectTag(thisUpdate, TAG.GENERALIZED_TIME, 'thisUpdate')), nextUpdate: next, status: state };
    }
    return 'no response for this certificate';
  } catch (error) {
    return `malformed OCSP response: ${(error as Error).message}`;
  }
}

function post(url: string, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const request = http.request(
      url,
      { method: 'POST', headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response', 'content-length': body.length }, timeout: FETCH_TIMEOUT_MS },
      (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) response.destroy(new Error(`response over ${MAX_RESPONSE_BYTES} bytes`));
          else chunks.push(chunk);
        });
        response.on('end', () => (response.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`responder answered HTTP ${String(response.statusCode)}`))));
        response.on('error', reject);
      },
    );
    request.on('timeout', () => request.destroy(new Error('responder timed out')));
    request.on('error', reject);
    request.end(body);
  });
}

export function createOcspStapler(options: OcspStaplerOptions): OcspStapler {
  const now = options.now ?? Date.now;
  const entries = new Map<string, Entry>();
  let closed = false;

  const entryFor = (certificate: Buffer, issuer: Buffer | null): Entry => {
    const key = createHash('sha256').update(certificate).digest('base64');
    let entry = entries.get(key);
    if (entry !== undefined) return entry;
    let target: Entry['target'] = null;
    try {
      const built = issuer === null ? null : buildOcspRequest(certificate, issuer);
      if (built !== null && built.url !== null) target = { url: built.url, request: built.request, serial: built.serial };
    } catch (error) {
      options.logger.warn({ reason: (error as Error).message }, 'OCSP stapling: certificate not understood; no staple');
    }
    if (entries.size >= MAX_ENTRIES) entries.clear();
    entry = { target, staple: null, fetching: null, retryAtMs: 0 };
    entries.set(key, entry);
    return entry;
  };

  const fetchInto = (entry: Entry): Promise<void> => {
    const target = entry.target;
    if (target === null || closed) return Promise.resolve();
    entry.fetching ??= post(target.url, target.request)
      .then((der) => {
        const inspected = inspectOcspResponse(der, target.serial);
        if (typeof inspected === 'string') throw new Error(inspected);
        const fetchedAt = now();
        const expiresAtMs = inspected.nextUpdate?.getTime() ?? fetchedAt + VALIDITY_WITHOUT_NEXT_UPDATE_MS;
        if (expiresAtMs <= fetchedAt) throw new Error('responder sent a response already past its nextUpdate');
        if (inspected.status !== 'good') options.logger.warn({ responder: target.url, status: inspected.status }, 'OCSP responder reports the listener certificate as not good');
        const start = Math.min(inspected.thisUpdate.getTime(), fetchedAt);
        entry.staple = { der, expiresAtMs, refreshAtMs: start + (expiresAtMs - start) / 2 };
      })
      .catch((error: unknown) => {
        entry.retryAtMs = now() + RETRY_AFTER_FAILURE_MS;
        options.logger.warn({ responder: target.url, reason: (error as Error).message }, 'OCSP stapling: no fresh response');
      })
      .finally(() => {
        entry.fetching = null;
      });
    return entry.fetching;
  };

  const usable = (entry: Entry): Buffer | undefined => (entry.staple !== null && now() < entry.staple.expiresAtMs ? entry.staple.der : undefined);

  return {
    onOcspRequest(certificate, issuer, callback) {
      const entry = entryFor(certificate, issuer);
      if (entry.target === null) {
        callback(null);
        return;
      }
      const at = now();
      const due = entry.staple === null || at >= entry.staple.refreshAtMs;
      if (due && entry.fetching === null && at >= entry.retryAtMs) void fetchInto(entry);
      const current = usable(entry);
      if (current !== undefined || entry.fetching === null) {
        callback(null, current);
        return;
      }
      // Nothing to staple yet: wait briefly for the fetch under way rather than hold the handshake long.
      let answered = false;
      const answer = (): void => {
        if (answered) return;
        answered = true;
        callback(null, usable(entry));
      };
      const timer = setTimeout(answer, FIRST_FETCH_WAIT_MS);
      void entry.fetching.then(() => {
        clearTimeout(timer);
        answer();
      });
    },
    close() {
      closed = true;
      entries.clear();
    },
  };
}
