/**
 * State store Components → what the state API serves, once per snapshot: each store's backend, key
 * prefix strategy and default TTL. Redis stores open no socket here (the block's `activated` does);
 * in-memory stores are kept per (namespace, app id, name) for the process, so a reload keeps their data.
 */
import { makeDiagnostic } from '../../config/diagnostics.js';
import type { Diagnostic } from '../../config/resource.js';
import type { DaprCompileInput } from '../api/building-block.js';
import { MG_DAPR_BAD_METADATA } from '../components/registry.js';
import type { ResolvedComponent } from '../components/registry.js';
import { KEY_SEPARATOR, keyPrefixer } from './keys.js';
import type { KeyPrefixer } from './keys.js';
import { MemoryStateStore } from './memory-store.js';
import { RedisStateStore, redisConnection } from './redis-store.js';
import type { RedisStoreSettings } from './redis-store.js';
import type { StateStore } from './store.js';

export const REDIS_STATE = 'state.redis';
export const MEMORY_STATE = 'state.in-memory';

export interface StateStoreBinding {
  readonly name: string;
  readonly type: string;
  readonly keys: KeyPrefixer;
  /** Component `ttlInSeconds`: applies to writes that give none. */
  readonly defaultTtlSeconds: number | null;
  readonly store: StateStore;
  /** Opens the backend's connection ahead of the first call (Redis); called when the snapshot becomes active. */
  readonly warmUp: () => void;
}

export interface CompiledState {
  readonly stores: ReadonlyMap<string, StateStoreBinding>;
}

/** Where Redis connection problems are reported (the outbound listener's logger, once it registered the API). */
export interface StateLog {
  warn(details: Record<string, unknown>, message: string): void;
}

let stateLog: StateLog = { warn: () => undefined };

export function setStateLog(log: StateLog): void {
  stateLog = log;
}

const memoryStores = new Map<string, MemoryStateStore>();

function problem(diagnostics: Diagnostic[], component: ResolvedComponent, field: string, message: string): void {
  diagnostics.push(makeDiagnostic(MG_DAPR_BAD_METADATA, message, component.at(field), component.subject(field)));
}

function integerField(component: ResolvedComponent, field: string, diagnostics: Diagnostic[], minimum: number): number | null | undefined {
  const text = component.metadata[field];
  if (text === undefined || text === '') return null;
  if (!/^-?\d+$/.test(text.trim()) || Number(text) < minimum) {
    problem(diagnostics, component, field, `${field} must be an integer${minimum > -Infinity ? ` ≥ ${minimum}` : ''}, got "${text}"`);
    return undefined;
  }
  return Number(text);
}

function parseHost(value: string): { host: string; port: number } | null {
  const match = /^(\[[0-9a-fA-F:]+\]|[^:/\s]+):(\d{1,5})$/.exec(value.trim());
  if (match === null || Number(match[2]) < 1 || Number(match[2]) > 65535) return null;
  return { host: (match[1] as string).replace(/^\[|\]$/g, ''), port: Number(match[2]) };
}

function redisSettings(component: ResolvedComponent, diagnostics: Diagnostic[]): RedisStoreSettings | null {
  const hostText = component.metadata.redisHost;
  const address = hostText === undefined ? null : parseHost(hostText);
  if (address === null) {
    problem(diagnostics, component, 'redisHost', hostText === undefined ? 'state.redis needs metadata redisHost ("host:port")' : `redisHost must be "host:port", got "${hostText}"`);
  }
  const db = integerField(component, 'redisDB', diagnostics, 0);
  const tls = (component.metadata.enableTLS ?? 'false').toLowerCase();
  if (tls !== 'true' && tls !== 'false') problem(diagnostics, component, 'enableTLS', `enableTLS must be "true" or "false", got "${component.metadata.enableTLS ?? ''}"`);
  if (address === null || db === undefined || (tls !== 'true' && tls !== 'false')) return null;
  const { redisUsername: username, redisPassword: password } = component.metadata;
  return { ...address, username: username === '' ? undefined : username, password: password === '' ? undefined : password, db: db ?? 0, tls: tls === 'true' };
}

function bind(component: ResolvedComponent, input: DaprCompileInput): StateStoreBinding | null {
  const { diagnostics } = input;
  const strategy = component.metadata.keyPrefix ?? 'appid';
  if (strategy.includes(KEY_SEPARATOR)) problem(diagnostics, component, 'keyPrefix', `keyPrefix must not contain "${KEY_SEPARATOR}"`);
  const ttl = integerField(component, 'ttlInSeconds', diagnostics, -Infinity);
  const keys = keyPrefixer(strategy === '' ? 'appid' : strategy, { appId: input.appId, namespace: input.namespace, storeName: component.name });
  if (component.type === MEMORY_STATE) {
    const identity = `${input.namespace}/${input.appId}/${component.name}`;
    let store = memoryStores.get(identity);
    if (store === undefined) {
      store = new MemoryStateStore();
      // A check without a sidecar (appId '') serves nothing: its store is not kept.
      if (input.appId !== '') memoryStores.set(identity, store);
    }
    return ttl === undefined ? null : { name: component.name, type: component.type, keys, defaultTtlSeconds: ttl, store, warmUp: () => undefined };
  }
  const settings = redisSettings(component, diagnostics);
  if (settings === null || ttl === undefined || strategy.includes(KEY_SEPARATOR)) return null;
  const onError = (message: string): void =>
    stateLog.warn({ store: component.name, redis: `${settings.host}:${settings.port}`, reason: message }, 'state store Redis is unreachable; its calls fail with ERR_STATE_* until it is back');
  return {
    name: component.name,
    type: component.type,
    keys,
    defaultTtlSeconds: ttl,
    store: new RedisStateStore(settings, onError),
    warmUp: () => void redisConnection(settings, onError),
  };
}

export function compileState(input: DaprCompileInput): CompiledState {
  const stores = new Map<string, StateStoreBinding>();
  for (const component of input.components.all) {
    if (component.type !== REDIS_STATE && component.type !== MEMORY_STATE) continue;
    const binding = bind(component, input);
    if (binding !== null) stores.set(component.name, binding);
  }
  return { stores };
}
