/** Exit codes and the usage-error type (exit code 2), kept apart so every command shares one wording. */
export const EXIT_OK = 0;
export const EXIT_INVALID = 1;
export const EXIT_USAGE = 2;

export class UsageError extends Error {}
