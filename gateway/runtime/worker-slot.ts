/**
 * The supervisor's handle on one worker thread (worker-supervisor.ts): questions to it by id, each
 * answered by the message of the same id, and every question still waiting rejected when the thread
 * exits.
 */
import type { Worker } from 'node:worker_threads';
import type { FromWorker, ToWorker } from './worker-protocol.js';

type Question = ToWorker extends infer M ? (M extends { readonly id: number } ? Omit<M, 'id'> : never) : never;
type Answer = Extract<FromWorker, { readonly id: number }>;

export class WorkerSlot {
  /** Read at start: once the thread has exited, `thread.threadId` is -1. */
  readonly threadId: number;
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (answer: Answer) => void; reject: (error: Error) => void }>();

  constructor(
    readonly index: number,
    readonly thread: Worker,
  ) {
    this.threadId = thread.threadId;
    thread.on('message', (message: FromWorker) => {
      if (!('id' in message)) return;
      const waiting = this.pending.get(message.id);
      this.pending.delete(message.id);
      waiting?.resolve(message);
    });
    thread.once('exit', (code) => {
      for (const waiting of this.pending.values()) waiting.reject(new Error(`worker ${index} exited (code ${code}) before answering`));
      this.pending.clear();
    });
  }

  ask<T extends Answer['type']>(question: Question & { readonly type: T }): Promise<Extract<Answer, { readonly type: T }>> {
    const id = ++this.nextId;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (answer: Answer) => void, reject });
      this.thread.postMessage({ ...question, id } as ToWorker);
    });
  }

  /** A message that wants no answer. */
  tell(message: ToWorker): void {
    this.thread.postMessage(message);
  }
}
