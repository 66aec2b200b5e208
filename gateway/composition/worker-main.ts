/** A worker thread's entry (worker-supervisor.ts starts it as WORKER_ENTRY): the runtime's worker side, with this build's plugin table. */
import { serveWorkerThread } from '../runtime/worker-thread.js';
import { PIPELINE_PLUGINS } from './plugin-table.js';

serveWorkerThread(PIPELINE_PLUGINS);
