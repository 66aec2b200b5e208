/**
 * The TLS 1.2 cipher suites offered when a Gateway server names none: Mozilla's "intermediate" server
 * profile (https://wiki.mozilla.org/Security/Server_Side_TLS, version 5.7) without its DHE suites —
 * forward-secret AEAD suites only, so no CBC suite (LUCKY13, Bleichenbacher-style padding oracles) is
 * ever negotiated. DHE is left out because every client that speaks TLS 1.2 with an AEAD suite also
 * speaks ECDHE, and finite-field DH needs per-listener parameters for no client that would need them.
 * TLS 1.3 suites are AEAD by construction and always offered.
 */
export const INTERMEDIATE_CIPHER_SUITES: readonly string[] = Object.freeze([
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
]);

/** OpenSSL names of the TLS 1.3 suites; node disables TLS 1.3 when a `ciphers` option names none of them. */
export const TLS13_CIPHER_SUITES: readonly string[] = Object.freeze(['TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256']);

/** The `ciphers` option for the intermediate profile: every TLS 1.3 suite, then the TLS 1.2 ones. */
export const INTERMEDIATE_CIPHERS_OPTION = [...TLS13_CIPHER_SUITES, ...INTERMEDIATE_CIPHER_SUITES].join(':');
