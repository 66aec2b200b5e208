/**
 * Load-time index over the rules of one action's policies (DENY or ALLOW), so that a request runs the
 * matchers of only the rules its path could satisfy, in config order (the first match names the
 * deciding policy and rule, so the order is part of the result).
 *
 * A rule whose `to` branches all constrain the path carries the literal heads of its path patterns
 * (`CompiledRule.pathHeads`): it can only match a path starting with one of them. The heads go into a
 * character trie; the heads that are prefixes of a path are exactly the trie nodes the path walks
 * through, so the deepest node reached holds, precomputed, every headed rule the path admits. Those
 * are merged by order with the rules that do not constrain the path. Of those, a rule whose hosts are
 * all exact or `*suffix` patterns can only match an authority ending with one of them
 * (`CompiledRule.hostTails`): the pathless rules an authority admits are filtered once per authority
 * and remembered. Nothing else is skipped: the admitted rules run their full matchers, so every other
 * semantic stays the matchers' own.
 */
import type { CompiledPolicy, CompiledRule, RbacDecision } from './compiled-policy.js';

export interface IndexedRule {
  readonly policy: CompiledPolicy;
  readonly rule: CompiledRule;
  /** Position among all rules of the indexed policies: config order. */
  readonly order: number;
  /** The decision when this rule is the first to match, built once. */
  readonly decision: RbacDecision;
}

interface HeadNode {
  readonly children: Map<number, HeadNode>;
  /** Rules with a head that is this node's string or a prefix of it, by order. */
  admitted: readonly IndexedRule[];
}

export interface RuleIndex {
  /** Rules that do not constrain the path, by order. */
  readonly pathless: readonly IndexedRule[];
  readonly heads: HeadNode;
  /** Authority → the pathless rules it admits; bounded, since clients choose the Host header. */
  readonly pathlessByAuthority: Map<string, readonly IndexedRule[]>;
}

/** Authorities remembered per index; past it the memo starts over. */
export const AUTHORITY_MEMO_LIMIT = 1024;

/** One action's policies in config order, and the index the request path evaluates them through. */
export interface IndexedPolicies {
  readonly policies: readonly CompiledPolicy[];
  readonly index: RuleIndex;
}

function headNode(): HeadNode {
  return { children: new Map(), admitted: [] };
}

function insertHead(root: HeadNode, head: string): HeadNode {
  let node = root;
  for (let i = 0; i < head.length; i++) {
    const code = head.charCodeAt(i);
    let child = node.children.get(code);
    if (child === undefined) {
      child = headNode();
      node.children.set(code, child);
    }
    node = child;
  }
  return node;
}

function mergeByOrder(a: readonly IndexedRule[], b: readonly IndexedRule[]): IndexedRule[] {
  const merged: IndexedRule[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const next = j >= b.length || (i < a.length && (a[i] as IndexedRule).order <= (b[j] as IndexedRule).order) ? (a[i++] as IndexedRule) : (b[j++] as IndexedRule);
    // A rule with two heads on one chain (`/a*` and `/a/b*`) is admitted once.
    if (merged.at(-1) !== next) merged.push(next);
  }
  return merged;
}

export function indexPolicies(policies: readonly CompiledPolicy[]): IndexedPolicies {
  const pathless: IndexedRule[] = [];
  const root = headNode();
  const ownByNode = new Map<HeadNode, IndexedRule[]>();
  let order = 0;
  for (const policy of policies) {
    for (const rule of policy.rules) {
      const decision: RbacDecision = { allowed: policy.action !== 'DENY', policy: policy.id, ruleIndex: rule.index };
      const entry: IndexedRule = { policy, rule, order: order++, decision };
      if (rule.pathHeads === null) {
        pathless.push(entry);
        continue;
      }
      for (const head of rule.pathHeads) {
        const node = insertHead(root, head);
        const own = ownByNode.get(node) ?? [];
        if (own.at(-1) !== entry) own.push(entry);
        ownByNode.set(node, own);
      }
    }
  }
  // Top-down, so each node inherits the rules admitted by its (already complete) parent.
  const pending: [HeadNode, readonly IndexedRule[]][] = [[root, []]];
  while (pending.length > 0) {
    const [node, inherited] = pending.pop() as [HeadNode, readonly IndexedRule[]];
    node.admitted = mergeByOrder(inherited, ownByNode.get(node) ?? []);
    for (const child of node.children.values()) pending.push([child, node.admitted]);
  }
  return { policies, index: { pathless, heads: root, pathlessByAuthority: new Map() } };
}

/** The headed rules `path` admits (those with a head that is a prefix of `path`), by order. */
export function rulesAdmittedByPath(index: RuleIndex, path: string): readonly IndexedRule[] {
  let node = index.heads;
  for (let i = 0; i < path.length; i++) {
    const child = node.children.get(path.charCodeAt(i));
    if (child === undefined) break;
    node = child;
  }
  return node.admitted;
}

function admitsAuthority(rule: CompiledRule, authority: string): boolean {
  const tails = rule.hostTails;
  if (tails === null) return true;
  for (const tail of tails) if (authority.endsWith(tail)) return true;
  return false;
}

/** The pathless rules `authority` admits (those not constrained to other hosts), by order. */
export function pathlessRulesFor(index: RuleIndex, authority: string): readonly IndexedRule[] {
  const memo = index.pathlessByAuthority;
  let rules = memo.get(authority);
  if (rules === undefined) {
    rules = index.pathless.filter((entry) => admitsAuthority(entry.rule, authority));
    if (memo.size >= AUTHORITY_MEMO_LIMIT) memo.clear();
    memo.set(authority, rules);
  }
  return rules;
}
