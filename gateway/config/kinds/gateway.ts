/**
 * `networking.istio.io` Gateway (docs/routing.md#gateways-and-listeners): the listeners of the ingress proxy and which
 * VirtualServices may bind to them.
 */
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { PortNumber, described, stringEnum, stringList, stringMap, strictObject } from './common.js';

export const Port = strictObject(
  {
    number: described(PortNumber, 'Port to listen on.'),
    protocol: Type.String({ description: 'HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, MONGO, TCP, TLS (also REDIS, MYSQL).' }),
    name: Type.String({ description: 'Port name.' }),
    targetPort: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'No effect on a Gateway (kept for compatibility).' })),
  },
  'A listener port.',
);
export type Port = Static<typeof Port>;

const tlsVersion = (description: string) => stringEnum(['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3'], description);

export const ServerTLSSettings = strictObject(
  {
    httpsRedirect: Type.Optional(Type.Boolean({ description: 'On an HTTP server: 301 every request to https.' })),
    mode: Type.Optional(
      stringEnum(
        ['PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'AUTO_PASSTHROUGH', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL'],
        'How TLS is handled (enum default PASSTHROUGH).',
        'PASSTHROUGH',
      ),
    ),
    serverCertificate: Type.Optional(Type.String({ description: 'PEM server certificate file (SIMPLE/MUTUAL).' })),
    privateKey: Type.Optional(Type.String({ description: 'PEM private key file (SIMPLE/MUTUAL).' })),
    caCertificates: Type.Optional(Type.String({ description: 'PEM CA bundle to verify client certificates (MUTUAL/OPTIONAL_MUTUAL).' })),
    caCrl: Type.Optional(Type.String({ description: 'PEM certificate revocation list file.' })),
    credentialName: Type.Optional(Type.String({ description: 'Credential looked up in MeshConfig `credentialsDirectory`.' })),
    credentialNames: Type.Optional(Type.Array(Type.String(), { maxItems: 2, description: 'Up to two credentials (RSA + ECDSA).' })),
    tlsCertificates: Type.Optional(
      Type.Array(
        strictObject(
          {
            serverCertificate: Type.Optional(Type.String({ description: 'PEM server certificate file.' })),
            privateKey: Type.Optional(Type.String({ description: 'PEM private key file.' })),
            caCertificates: Type.Optional(Type.String({ description: 'PEM CA bundle.' })),
          },
          'A certificate/key pair.',
        ),
        { maxItems: 2, description: 'Up to two certificate/key pairs (RSA + ECDSA).' },
      ),
    ),
    caCertCredentialName: Type.Optional(Type.String({ description: 'Separate credential holding the client CA.' })),
    subjectAltNames: Type.Optional(stringList('Accept client certificates whose SAN matches one of these.')),
    verifyCertificateSpki: Type.Optional(stringList('Base64 SHA-256 SPKI pins of accepted client certificates.')),
    verifyCertificateHash: Type.Optional(stringList('Hex SHA-256 pins of accepted client certificates.')),
    minProtocolVersion: Type.Optional(tlsVersion('Minimum TLS version (default TLSv1.2).')),
    maxProtocolVersion: Type.Optional(tlsVersion('Maximum TLS version.')),
    cipherSuites: Type.Optional(stringList('Allowed cipher suites (OpenSSL names).')),
    insecureSkipVerify: Type.Optional(Type.Boolean({ description: 'Accept client certificates even when validation fails.' })),
  },
  'TLS settings of a server.',
);
export type ServerTLSSettings = Static<typeof ServerTLSSettings>;

export const Server = strictObject(
  {
    port: Port,
    bind: Type.Optional(Type.String({ description: 'Listen IP (default all interfaces) or `unix://` path.' })),
    hosts: Type.Array(Type.String(), {
      minItems: 1,
      description: '`[namespace/]dnsName` entries restricting which VirtualServices (by namespace and host) may bind.',
    }),
    tls: Type.Optional(ServerTLSSettings),
    defaultEndpoint: Type.Optional(Type.String({ description: 'Loopback endpoint for forwarded traffic (unused).' })),
    name: Type.Optional(Type.String({ description: 'Optional unique server name.' })),
  },
  'A listener of the gateway.',
);
export type Server = Static<typeof Server>;

export const GatewaySpec = strictObject(
  {
    servers: Type.Array(Server, { description: 'Listeners.' }),
    selector: Type.Optional(stringMap('Labels of the proxy instances that serve this Gateway; empty ⇒ all.')),
  },
  'Gateway: listeners of the ingress proxy.',
);
export type GatewaySpec = Static<typeof GatewaySpec>;
