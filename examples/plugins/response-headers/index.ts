/**
 * Sets fixed response headers on every response of the routes it is placed on (security headers,
 * an experiment marker), whoever answers: the upstream or the proxy itself.
 */
import { Type, definePlugin } from 'meshgate/plugin-api';

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

export default definePlugin({
  configSchema: Type.Object(
    {
      set: Type.Record(Type.String(), Type.String(), { description: 'Header name → value, set on every response.' }),
    },
    { additionalProperties: false },
  ),
  compile(setup) {
    const headers: [string, string][] = [];
    for (const [name, value] of Object.entries(setup.config.set)) {
      const lower = name.toLowerCase();
      if (!HEADER_NAME.test(lower)) setup.problem(`"${name}" is not a header name`, ['set', name]);
      headers.push([lower, value]);
    }
    return headers;
  },
  onRequest(request, headers) {
    for (const [name, value] of headers) request.setResponseHeader(name, value);
  },
});
