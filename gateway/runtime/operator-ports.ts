/**
 * The ports an operator and the platform reach, as opposed to the proxy listeners: the admin API, the
 * status port and the metrics port. A proxy has them once — a single runtime (gateway-runtime.ts) or,
 * with workers, the supervisor (worker-supervisor.ts) — bound at start from MeshConfig or the
 * command line, and kept across reloads (their MeshConfig fields take effect after a restart).
 */
import type { FastifyInstance } from 'fastify';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdminServer } from '../admin/server.js';
import type { AdminSource, AdminView } from '../admin/server.js';
import { closeServer, createMetricsServer, createStatusServer, listenOn, splitAddress } from '../admin/status-server.js';
import type { Readiness } from '../admin/status-server.js';
import type { MeshConfigSpec } from '../config/kinds/mesh-config.js';
import type { RenderedMetrics } from '../pipeline/capabilities.js';

/** The sockets a runtime listens on besides its proxy listeners; null when that listener is off or not yet bound. */
export interface OperatorAddresses {
  readonly admin: AddressInfo | null;
  readonly status: AddressInfo | null;
  readonly metrics: AddressInfo | null;
}

/** Command-line overrides of MeshConfig's addresses; '' turns the status or metrics port off. */
export interface OperatorOverrides {
  readonly adminAddress?: string;
  readonly statusAddress?: string;
  readonly metricsAddress?: string;
}

export interface OperatorPortsOptions extends OperatorOverrides {
  readonly source: AdminSource;
  readonly views: readonly AdminView[];
  readonly mesh: MeshConfigSpec;
  readonly readiness: () => Readiness;
  readonly renderMetrics: () => Promise<RenderedMetrics>;
}

/** The addresses as configured, for the start's log line ('off' for a port turned off). */
export interface OperatorBindings {
  readonly admin: string;
  readonly status: string;
  readonly metrics: string;
}

export class OperatorPorts {
  private admin: FastifyInstance | null = null;
  private status: http.Server | null = null;
  private metrics: http.Server | null = null;

  async open(options: OperatorPortsOptions): Promise<OperatorBindings> {
    const { mesh } = options;
    this.admin = await createAdminServer(options.source, options.views);
    const adminAddress = options.adminAddress ?? mesh.adminAddress;
    await this.admin.listen(splitAddress(adminAddress));
    const statusAddress = options.statusAddress ?? mesh.statusAddress;
    if (statusAddress !== '') {
      this.status = createStatusServer(options.readiness);
      await listenOn(this.status, statusAddress);
    }
    const metricsAddress = options.metricsAddress ?? mesh.metricsAddress;
    if (metricsAddress !== '') {
      this.metrics = createMetricsServer({ render: options.renderMetrics, ...(mesh.appMetricsUrl === undefined ? {} : { appMetricsUrl: mesh.appMetricsUrl }) });
      await listenOn(this.metrics, metricsAddress);
    }
    return { admin: adminAddress, status: statusAddress || 'off', metrics: metricsAddress || 'off' };
  }

  addresses(): OperatorAddresses {
    const bound = (server: http.Server | null): AddressInfo | null => (server?.listening === true ? (server.address() as AddressInfo) : null);
    return { admin: bound(this.admin?.server ?? null), status: bound(this.status), metrics: bound(this.metrics) };
  }

  /** After the drain: the status port said 503 through it so that load balancers stopped sending; now it goes too. */
  async close(): Promise<void> {
    if (this.status !== null) await closeServer(this.status);
    if (this.metrics !== null) await closeServer(this.metrics);
    await this.admin?.close();
  }
}
