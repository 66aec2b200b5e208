/**
 * Dapr's state key prefixes (`keyPrefix` metadata): `appid` (default) `<appId>||<key>`, `name`
 * `<store>||<key>`, `namespace` `<namespace>.<appId>||<key>`, `none` the key as is, anything else
 * `<that text>||<key>`. So two apps do not see each other's state unless they choose to share.
 */
export const KEY_SEPARATOR = '||';

export interface KeyPrefixer {
  /** The key the store sees. */
  storeKey(key: string): string;
  /** The key the app gave, from a store key (bulk answers). */
  appKey(storeKey: string): string;
}

export function keyPrefixer(strategy: string, context: { appId: string; namespace: string; storeName: string }): KeyPrefixer {
  let prefix: string;
  switch (strategy.toLowerCase()) {
    case 'none':
      return { storeKey: (key) => key, appKey: (key) => key };
    case 'appid':
      prefix = context.appId;
      break;
    case 'name':
      prefix = context.storeName;
      break;
    case 'namespace':
      prefix = `${context.namespace}.${context.appId}`;
      break;
    default:
      prefix = strategy;
  }
  const head = `${prefix}${KEY_SEPARATOR}`;
  return { storeKey: (key) => head + key, appKey: (key) => (key.startsWith(head) ? key.slice(head.length) : key) };
}
