/**
 * IP / CIDR matching for `ipBlocks`, `remoteIpBlocks` and the `source.ip`/`remote.ip`/`destination.ip`
 * conditions. Blocks are parsed once into (family, network, prefix) with bigint arithmetic, so IPv4 and
 * IPv6 share one code path. IPv4-mapped IPv6 peers (`::ffff:10.0.0.1`, what a dual-stack socket reports)
 * are matched as IPv4: otherwise `10.0.0.0/8` would silently never match on such a listener.
 */
import { isIPv4, isIPv6 } from 'node:net';

interface ParsedIp {
  readonly family: 4 | 6;
  readonly value: bigint;
}

interface IpBlock {
  readonly family: 4 | 6;
  readonly network: bigint;
  readonly mask: bigint;
}

function parseIpv4(text: string): bigint {
  let value = 0n;
  for (const part of text.split('.')) value = (value << 8n) | BigInt(Number(part));
  return value;
}

function parseIpv6(text: string): bigint {
  let address = text;
  let tail: bigint | null = null;
  const lastColon = address.lastIndexOf(':');
  if (address.slice(lastColon + 1).includes('.')) {
    tail = parseIpv4(address.slice(lastColon + 1));
    address = `${address.slice(0, lastColon + 1)}0:0`;
  }
  const [head = '', rest] = address.split('::') as [string, string | undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const missing = 8 - headGroups.length - restGroups.length;
  const groups = rest === undefined ? headGroups : [...headGroups, ...Array<string>(missing).fill('0'), ...restGroups];
  let value = 0n;
  for (const group of groups) value = (value << 16n) | BigInt(parseInt(group, 16));
  if (tail !== null) value = (value & ~0xffffffffn) | tail;
  return value;
}

export function parseIp(text: string): ParsedIp | null {
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  const zoneless = bare.split('%')[0] as string;
  if (isIPv4(zoneless)) return { family: 4, value: parseIpv4(zoneless) };
  if (!isIPv6(zoneless)) return null;
  const value = parseIpv6(zoneless);
  if (value >> 32n === 0xffffn) return { family: 4, value: value & 0xffffffffn };
  return { family: 6, value };
}

function parseBlock(text: string): IpBlock | null {
  const slash = text.indexOf('/');
  const ip = parseIp(slash === -1 ? text : text.slice(0, slash));
  if (ip === null) return null;
  const bits = ip.family === 4 ? 32 : 128;
  let prefix = bits;
  if (slash !== -1) {
    const prefixText = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(prefixText)) return null;
    // An IPv4-mapped CIDR (`::ffff:10.0.0.0/104`) is rebased onto the IPv4 prefix length.
    prefix = Number(prefixText) - (ip.family === 4 && text.includes(':') ? 96 : 0);
    if (prefix < 0 || prefix > bits) return null;
  }
  const width = BigInt(bits);
  const mask = ((1n << width) - 1n) ^ ((1n << (width - BigInt(prefix))) - 1n);
  return { family: ip.family, network: ip.value & mask, mask };
}

export type IpMatcher = (ip: string) => boolean;

/** Compiles IPs/CIDRs into a matcher, or returns the entries that do not parse. */
export function compileIpBlocks(entries: readonly string[]): { matcher: IpMatcher } | { invalid: string[] } {
  const blocks: IpBlock[] = [];
  const invalid: string[] = [];
  for (const entry of entries) {
    const block = parseBlock(entry.trim());
    if (block === null) invalid.push(entry);
    else blocks.push(block);
  }
  if (invalid.length > 0) return { invalid };
  return {
    matcher: (text) => {
      const ip = parseIp(text);
      if (ip === null) return false;
      for (const block of blocks) {
        if (block.family === ip.family && (ip.value & block.mask) === block.network) return true;
      }
      return false;
    },
  };
}
