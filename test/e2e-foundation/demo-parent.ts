/**
 * A stand-in for `meshgate demo` in demo-process.test.ts: starts one proxy the way the demo does, prints
 * its pid once it is ready, and stays up until the test kills it (SIGKILL, so it cannot clean up).
 * Arguments: <config path> <admin host:port> <log file>.
 */
import { spawnProxy, waitProxyReady } from '../../gateway/cli/demo-process.js';

const [configPath, admin, logFile] = process.argv.slice(2) as [string, string, string];
const launch = { name: 'proxy', args: ['-c', configPath], admin, logFile };
const child = spawnProxy(launch);
await waitProxyReady(launch, child);
process.stdout.write(`${child.pid ?? ''}\n`);
setInterval(() => undefined, 60_000);
