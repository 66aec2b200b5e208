/** The process logger: pino JSON lines with every place a secret could appear redacted. */
import pino from 'pino';
import type { Logger } from 'pino';

export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  '*.authorization',
  '*.cookie',
  '*.privateKey',
  '*.keyPem',
];

export function createLogger(level: string): Logger {
  return pino({ level, base: { pid: process.pid }, redact: { paths: REDACTED_PATHS, censor: '[redacted]' } });
}
