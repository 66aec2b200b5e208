/**
 * One worker thread of a proxy started with more than one worker (worker-supervisor.ts): a
 * GatewayRuntime with the proxy listeners only, each bound with SO_REUSEPORT next to the other
 * workers' sockets. It never reads the config files: it builds its snapshots' closures from the
 * supervisor's compile (portable-config.ts), swaps when the supervisor says so, and answers for its
 * metrics and admin views; signals, the config watch and the operator ports are the supervisor's.
 * The thread's entry module (gateway/composition/worker-main.ts) hands it the plugin table.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { MetricsExposition } from '../pipeline/capabilities.js';
import type { MeshPlugin } from '../pipeline/types.js';
import { createLogger } from '../logger.js';
import { GatewayRuntime } from './gateway-runtime.js';
import { metricsExpositionOf, proxyEventsOf } from './plugin-capabilities.js';
import { portableDiagnostics } from './portable-config.js';
import { adoptWorkerMemory } from './worker-memory.js';
import { giveBackWhenIdle } from './young-generation.js';
import type { FromWorker, ToWorker, WorkerData } from './worker-protocol.js';

if (parentPort === null) throw new Error('worker-thread.js runs only as a worker thread of worker-supervisor.js');
const port = parentPort;
const data = workerData as WorkerData;
const send = (message: FromWorker): void => port.postMessage(message);
adoptWorkerMemory(data.memory);
const logger = createLogger(data.logLevel).child({ worker: data.index });

export function serveWorkerThread(plugins: readonly MeshPlugin[]): void {
  const runtime = new GatewayRuntime({
    configPath: data.configPath,
    mode: data.mode,
    plugins,
    logger,
    watch: false,
    worker: {
      config: data.config,
      diagnostics: data.diagnostics,
      firstGeneration: data.firstGeneration,
      onConnection: proxyEventsOf(plugins).workerConnectionCounter(data.index),
      requestShutdown: () => send({ type: 'shutdown-requested', trigger: 'dapr shutdown API' }),
    },
    // Ends this thread only; the supervisor waits for every worker's exit.
    onExit: (code) => process.exit(code),
    ...(data.workloadName === null ? {} : { workloadName: data.workloadName }),
  });
  const exposition = metricsExpositionOf(plugins);

  port.on('message', (message: ToWorker) => {
    answer(runtime, exposition, message).catch((error: unknown) => logger.error({ err: error, request: message.type }, 'worker could not answer the supervisor'));
  });

  runtime.start().then(
    (started) => {
      if (!started.ok) {
        const message = started.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.code} ${d.message}`).join('; ');
        send({ type: 'refused', message, diagnostics: portableDiagnostics(started.diagnostics) });
        process.exit(1);
      }
      const { hash, diagnostics } = runtime.current();
      send({ type: 'ready', hash, diagnostics: portableDiagnostics(diagnostics) });
      // Each worker has its own V8 heap, grown by its own share of the traffic.
      giveBackWhenIdle();
    },
    (error: unknown) => {
      logger.error({ err: error }, 'worker failed to start');
      send({ type: 'refused', message: (error as Error).message, diagnostics: [] });
      void runtime.shutdown('start failure');
    },
  );
}

async function answer(runtime: GatewayRuntime, exposition: MetricsExposition, message: ToWorker): Promise<void> {
  switch (message.type) {
    case 'prepare':
      send({ type: 'prepare', id: message.id, preparation: await runtime.prepare(message.config, message.trigger) });
      return;
    case 'commit':
      send({ type: 'commit', id: message.id, outcome: await runtime.commit(message.generation, message.diagnostics, message.trigger) });
      return;
    case 'abandon':
      runtime.abandon();
      return;
    case 'drain':
      await runtime.shutdown(message.trigger);
      return;
    case 'metrics':
      send({ type: 'metrics', id: message.id, metrics: await exposition.workerSeries() });
      return;
    case 'config-dump':
      send({ type: 'config-dump', id: message.id, dump: runtime.configDump(message.lastRejected, message.diagnostics) });
      return;
    case 'view': {
      const view = runtime.views().find((candidate) => candidate.path === message.path && (candidate.method ?? 'GET') === message.method);
      const answered = view === undefined ? { status: 404, contentType: 'text/plain', body: 'no such view\n' } : await view.handle(message.query, message.body);
      send({ type: 'view', id: message.id, answer: answered });
      return;
    }
  }
}
