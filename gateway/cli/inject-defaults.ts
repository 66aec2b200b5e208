/** `meshgate inject`'s defaults, apart from its code so the command definition can show them without loading it. */
import { MESHGATE_VERSION } from '../version.js';

export const INJECT_DEFAULTS = {
  image: `meshgate:${MESHGATE_VERSION}`,
  configMap: 'meshgate-mesh',
  identitySecretPrefix: 'meshgate-identity-',
} as const;
