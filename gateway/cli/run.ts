/** `meshgate run`: the proxy itself; resolves only when it has stopped. */
import { formatDiagnostics } from '../config/format.js';
import { PIPELINE_PLUGINS } from '../pipeline/table.js';
import { GatewayRuntime } from '../runtime/gateway-runtime.js';
import { CONFIG_OPTIONS, configPath, listenAddress, parse, proxyMode } from './args.js';
import { createLogger } from './logger.js';
import { EXIT_INVALID } from './usage.js';
import { releaseYoungGeneration } from './young-generation.js';

export async function runCommand(args: readonly string[]): Promise<number> {
  const values = parse(args, {
    ...CONFIG_OPTIONS,
    'log-level': { type: 'string' },
    'admin-address': { type: 'string' },
    'status-address': { type: 'string' },
    'metrics-address': { type: 'string' },
  });
  const statusAddress = listenAddress(values, 'status-address');
  const metricsAddress = listenAddress(values, 'metrics-address');
  const logger = createLogger(typeof values['log-level'] === 'string' ? values['log-level'] : 'info');
  const mode = proxyMode(values);
  const path = configPath(values);
  return new Promise<number>((resolve) => {
    // A start failure (a port already taken) shuts the runtime down, whose clean exit must not read as success.
    let startFailed = false;
    const runtime = new GatewayRuntime({
      configPath: path,
      mode,
      plugins: PIPELINE_PLUGINS,
      logger,
      onExit: (code) => resolve(startFailed ? EXIT_INVALID : code),
      ...(typeof values.workload === 'string' ? { workloadName: values.workload } : {}),
      ...(typeof values['admin-address'] === 'string' ? { adminAddress: values['admin-address'] } : {}),
      ...(statusAddress === undefined ? {} : { statusAddress }),
      ...(metricsAddress === undefined ? {} : { metricsAddress }),
    });
    const stop = (signal: string): void => void runtime.shutdown(signal);
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    runtime.start().then(
      (started) => {
        if (started.ok) {
          releaseYoungGeneration();
          return;
        }
        process.stderr.write(formatDiagnostics(started.diagnostics, 'text'));
        process.stderr.write('meshgate: refusing to start on an invalid configuration\n');
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
