/**
 * `meshgate run`: the proxy itself; resolves only when it has stopped. With more than one worker
 * (`--concurrency`, MeshConfig `concurrency`, or an ingress's cores) the runtime read the config here
 * only to learn that and the configuration's operator ports; worker threads then build and serve it
 * (worker-supervisor.ts), and what their build refuses is printed as a refusal here.
 */
import { formatDiagnostics } from '../config/format.js';
import type { Diagnostic } from '../config/resource.js';
import { PIPELINE_PLUGINS, WORKER_ENTRY } from '../composition/plugin-table.js';
import { GatewayRuntime } from '../runtime/gateway-runtime.js';
import type { HandOff } from '../runtime/worker-protocol.js';
import { concurrency, configPath, listenAddress, logLevel, proxyMode } from './args.js';
import type { Values } from './args.js';
import { createLogger } from '../logger.js';
import { EXIT_INVALID } from './usage.js';
import { releaseYoungGeneration } from '../runtime/young-generation.js';

function refuse(diagnostics: readonly Diagnostic[]): void {
  process.stderr.write(formatDiagnostics(diagnostics, 'text'));
  process.stderr.write('meshgate: refusing to start on an invalid configuration\n');
}

export async function runCommand(values: Values): Promise<number> {
  const statusAddress = listenAddress(values, 'status-address');
  const metricsAddress = listenAddress(values, 'metrics-address');
  const mode = proxyMode(values);
  const path = configPath(values);
  const level = logLevel(values);
  const logger = createLogger(level);
  const workersFlag = concurrency(values);
  return new Promise<number>((resolve) => {
    // A start failure (a port already taken) shuts the runtime down, whose clean exit must not read as success.
    let startFailed = false;
    let stopRequested = false;
    let stop = (signal: string): void => {
      stopRequested = true;
      void runtime.shutdown(signal);
    };
    // Imported on use: a single-threaded proxy (every sidecar by default) does not load the supervisor.
    const serveWithWorkers = async (handOff: HandOff): Promise<void> => {
      const { StartRefused, WorkerSupervisor } = await import('../runtime/worker-supervisor.js');
      // A signal before the supervisor exists stopped the runtime that handed off, which ended the command.
      if (stopRequested) return;
      const supervisor = new WorkerSupervisor({
        configPath: path,
        mode,
        plugins: PIPELINE_PLUGINS,
        workerEntry: WORKER_ENTRY,
        logger,
        logLevel: level,
        workers: handOff.workers,
        read: handOff.read,
        config: handOff.config,
        onExit: (code) => resolve(startFailed ? EXIT_INVALID : code),
        ...(typeof values.workload === 'string' ? { workloadName: values.workload } : {}),
        ...(typeof values['admin-address'] === 'string' ? { adminAddress: values['admin-address'] } : {}),
        ...(statusAddress === undefined ? {} : { statusAddress }),
        ...(metricsAddress === undefined ? {} : { metricsAddress }),
      });
      stop = (signal) => void supervisor.shutdown(signal);
      try {
        await supervisor.start();
        releaseYoungGeneration();
      } catch (error) {
        startFailed = true;
        if (error instanceof StartRefused) refuse(error.diagnostics);
        else logger.error({ err: error }, 'meshgate failed to start');
        await supervisor.shutdown('start failure');
        resolve(EXIT_INVALID);
      }
    };
    const runtime = new GatewayRuntime({
      configPath: path,
      mode,
      plugins: PIPELINE_PLUGINS,
      logger,
      onExit: (code) => resolve(startFailed ? EXIT_INVALID : code),
      concurrency: workersFlag ?? 'default',
      ...(typeof values.workload === 'string' ? { workloadName: values.workload } : {}),
      ...(typeof values['admin-address'] === 'string' ? { adminAddress: values['admin-address'] } : {}),
      ...(statusAddress === undefined ? {} : { statusAddress }),
      ...(metricsAddress === undefined ? {} : { metricsAddress }),
    });
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    // Started with an IPC channel (by `meshgate demo`): the parent's death closes it, and this proxy follows.
    if (process.channel !== undefined) {
      process.channel.unref();
      process.once('disconnect', () => stop('parent exited'));
    }
    runtime.start().then(
      (started) => {
        if (started.ok && started.handOff !== undefined) {
          void serveWithWorkers(started.handOff);
          return;
        }
        if (started.ok) {
          releaseYoungGeneration();
          return;
        }
        refuse(started.diagnostics);
        resolve(EXIT_INVALID);
      },
      (error: unknown) => {
        startFailed = true;
        logger.error({ err: error }, 'meshgate failed to start');
        void runtime.shutdown('start failure').finally(() => resolve(EXIT_INVALID));
      },
    );
  });
}
