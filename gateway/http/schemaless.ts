/**
 * fastify requires ajv and fast-json-stringify when an instance is created (~1 MB of heap, held for
 * good), for routes that declare a JSON schema. No meshgate route does: the proxy streams bodies
 * untouched and the admin API writes its own JSON. These factories take their place and refuse loudly
 * should a route ever declare a schema, instead of the compilers being loaded by every proxy.
 */
import type { FastifyServerOptions } from 'fastify';

function refuseSchemas(): never {
  throw new Error('meshgate routes declare no JSON schemas (gateway/http/schemaless.ts)');
}

export const SCHEMALESS: NonNullable<FastifyServerOptions['schemaController']> = {
  compilersFactory: { buildValidator: refuseSchemas, buildSerializer: refuseSchemas },
};
