/**
 * Background DNS for `resolution: DNS` endpoints (docs/routing.md#serviceentry-and-workloadentry): every tracked name is looked up
 * when first tracked and again on a fixed interval; requests only read the last answer. A failed
 * refresh keeps the previous addresses (a DNS hiccup must not empty a cluster).
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

export type DnsLookup = (name: string) => Promise<string[]>;

export interface DnsCacheOptions {
  readonly refreshMs: number;
  /** 4 (Istio's default on single-stack hosts), 6, or 0 for both. */
  readonly family: 0 | 4 | 6;
  readonly onChange: (name: string) => void;
  readonly lookup?: DnsLookup;
}

export class DnsCache {
  private readonly answers = new Map<string, readonly string[]>();
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly timer: NodeJS.Timeout;
  private readonly resolve: DnsLookup;

  constructor(private readonly options: DnsCacheOptions) {
    this.resolve =
      options.lookup ??
      (async (name) => (await lookup(name, { all: true, family: options.family, verbatim: true })).map((a) => a.address));
    this.timer = setInterval(() => {
      for (const name of this.answers.keys()) void this.refresh(name);
    }, options.refreshMs);
    this.timer.unref();
  }

  /** Replace the set of names to keep resolved; new names are looked up now. */
  track(names: Iterable<string>): void {
    const wanted = new Set<string>();
    for (const name of names) if (isIP(name) === 0) wanted.add(name);
    for (const name of [...this.answers.keys()]) if (!wanted.has(name)) this.answers.delete(name);
    for (const name of wanted) {
      if (this.answers.has(name)) continue;
      this.answers.set(name, []);
      void this.refresh(name);
    }
  }

  /** An IP is its own answer; an unresolved name has none yet. */
  addresses(name: string): readonly string[] {
    return isIP(name) !== 0 ? [name] : (this.answers.get(name) ?? []);
  }

  /** Settles when every lookup started so far has finished. */
  async settled(): Promise<void> {
    await Promise.all([...this.inFlight.values()]);
  }

  private refresh(name: string): Promise<void> {
    const running = this.inFlight.get(name);
    if (running !== undefined) return running;
    const task = this.resolve(name)
      .then((addresses) => {
        if (!this.answers.has(name)) return;
        const sorted = [...new Set(addresses)].sort();
        const previous = this.answers.get(name) ?? [];
        if (sorted.length === 0 || sorted.join(',') === previous.join(',')) return;
        this.answers.set(name, sorted);
        this.options.onChange(name);
      })
      .catch(() => undefined)
      .finally(() => this.inFlight.delete(name));
    this.inFlight.set(name, task);
    return task;
  }

  close(): void {
    clearInterval(this.timer);
    this.answers.clear();
  }
}
