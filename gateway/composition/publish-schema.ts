/**
 * Writes config/meshgate.schema.json with the core's kinds and those the plugins of the table contribute
 * (RateLimitPolicy, …): `npm run schema`, or `node dist/gateway/composition/publish-schema.js [output]`.
 * test/config/generated-files fails when the committed file is stale.
 */
import { writeFile } from 'node:fs/promises';
import { PUBLISHED_SCHEMA_PATH, renderPublishedSchema } from '../config/published-schema.js';
import { PIPELINE_KINDS } from './plugin-table.js';

const output = process.argv[2] ?? PUBLISHED_SCHEMA_PATH;
await writeFile(output, renderPublishedSchema(PIPELINE_KINDS));
console.log(`wrote ${output}`);
