/**
 * The request as a user plugin sees it (`PluginRequest` of the public API), over fastify's request.
 * One object per phase step of a request that meets a plugin; `current` says which plugin is running,
 * so a local reply names it.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { sendLocalReply } from '../../gateway/http/local-reply.js';
import type { JwtAuthResult, RequestAttributes } from '../../gateway/pipeline/types.js';
import type { LocalReplyOptions, PluginLogger, PluginRequest } from '../../gateway/plugin-api/index.js';
import type { PlacedPlugin } from './compile.js';

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
const FORBIDDEN_VALUE = /[\r\n\0]/;
/** Set by the proxy itself; a plugin changing them would break forwarding or the request's identity. */
const PROXY_OWNED = new Set(['host', ':authority', 'content-length', 'transfer-encoding', 'connection', 'x-request-id']);

function checkedName(name: string): string {
  const lower = name.toLowerCase();
  if (!HEADER_NAME.test(lower)) throw new TypeError(`invalid header name "${name}"`);
  return lower;
}

function checkedValue(name: string, value: string): string {
  if (typeof value !== 'string' || FORBIDDEN_VALUE.test(value)) throw new TypeError(`invalid value for header "${name}"`);
  return value;
}

function requestHeaderName(name: string): string {
  const lower = checkedName(name);
  if (PROXY_OWNED.has(lower)) throw new TypeError(`header "${lower}" is set by the proxy and cannot be changed by a plugin`);
  return lower;
}

/** Local reply details (`x-meshgate-reason`, access log): the plugin and its reason, one token. */
export function pluginReplyDetails(plugin: string, reason: string): string {
  return `plugin[${plugin}]{${reason.replace(/\s+/g, '_')}}`;
}

export class HookedRequest implements PluginRequest {
  current!: PlacedPlugin;

  constructor(
    private readonly request: FastifyRequest,
    private readonly fastifyReply: FastifyReply,
  ) {}

  get attributes(): RequestAttributes {
    return this.request.mesh.attrs;
  }

  get requestId(): string {
    return this.request.mesh.requestId;
  }

  get auth(): JwtAuthResult | null {
    return this.request.mesh.auth;
  }

  get routeName(): string {
    return this.request.mesh.routeName;
  }

  get log(): PluginLogger {
    return this.current.logger;
  }

  header(name: string): string | undefined {
    const value = this.request.headers[name.toLowerCase()];
    return Array.isArray(value) ? value.join(', ') : value;
  }

  setRequestHeader(name: string, value: string): void {
    const lower = requestHeaderName(name);
    this.request.headers[lower] = checkedValue(lower, value);
  }

  removeRequestHeader(name: string): void {
    delete this.request.headers[requestHeaderName(name)];
  }

  setResponseHeader(name: string, value: string): void {
    const lower = checkedName(name);
    checkedValue(lower, value);
    const mesh = this.request.mesh;
    (mesh.responseHeaderEdits ??= {})[lower] = value;
    this.fastifyReply.header(lower, value);
  }

  reply(options: LocalReplyOptions): void {
    if (this.fastifyReply.sent) return;
    const status = options.status;
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new RangeError(`reply status must be an integer from 200 to 599, got ${String(status)}`);
    const reason = String(options.reason);
    sendLocalReply(
      this.request,
      this.fastifyReply,
      { status, flag: options.flag ?? '', details: pluginReplyDetails(this.current.key, reason), message: options.body ?? reason.replace(/_/g, ' ') },
      options.headers,
    );
  }
}
