/**
 * The fields of an X.509 certificate (RFC 5280 §4.1) that the mesh reads, parsed from its DER: the
 * validity window, the subject (printed RFC 4514-style in certificate order, as @peculiar/x509 prints
 * it, which XFCC `Subject` has always carried), the subjectAltName entries by type, basicConstraints,
 * the key usages, the OCSP responder and the key identifiers. SANs come from the extension's
 * GeneralNames, never from node's printed `subjectAltName` string, where a crafted value containing
 * `, URI:` is ambiguous.
 */
import { TAG, children, contents, decodeOid, decodeString, decodeTime, encoded, expectTag, readSingle } from './der.js';
import type { Element } from './der.js';

export const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extendedKeyUsage: '2.5.29.37',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  subjectAltName: '2.5.29.17',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  adOcsp: '1.3.6.1.5.5.7.48.1',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
} as const;

/** Attribute short names, as @peculiar/x509 prints them; other types print as their dotted OID. */
const ATTRIBUTE_NAMES: Readonly<Record<string, string>> = {
  '2.5.4.3': 'CN',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.6': 'C',
  '0.9.2342.19200300.100.1.25': 'DC',
  '1.2.840.113549.1.9.1': 'E',
  '2.5.4.42': 'G',
  '2.5.4.43': 'I',
  '2.5.4.4': 'SN',
  '2.5.4.12': 'T',
};

export interface NameAttribute {
  readonly type: string;
  /** The text, or `#<hex of the DER>` for a value that is not a string type. */
  readonly value: string;
  readonly isString: boolean;
}

export interface SubjectAltNames {
  readonly uris: readonly string[];
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly emails: readonly string[];
}

export interface ParsedCertificate {
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** The subject Name's DER, copied as the issuer of the certificates a CA signs. */
  readonly subjectDer: Uint8Array;
  /** Relative distinguished names in certificate order, each a list of attributes. */
  readonly subject: readonly (readonly NameAttribute[])[];
  readonly subjectPublicKeyInfo: Uint8Array;
  /** The subjectPublicKey BIT STRING's key bytes (what key identifiers hash). */
  readonly subjectPublicKey: Uint8Array;
  /** The serial number INTEGER's content bytes (what an OCSP CertID carries). */
  readonly serialNumber: Uint8Array;
  /** basicConstraints cA, or null without the extension. */
  readonly isCa: boolean | null;
  /** KeyUsage bit numbers that are set (RFC 5280 §4.2.1.3), or null without the extension. */
  readonly keyUsageBits: readonly number[] | null;
  /** extendedKeyUsage purpose OIDs, or null without the extension. */
  readonly extendedKeyUsages: readonly string[] | null;
  /** authorityInfoAccess id-ad-ocsp URIs (empty without any). */
  readonly ocspResponderUrls: readonly string[];
  readonly subjectKeyIdentifier: Uint8Array | null;
  /** null when the certificate has no subjectAltName extension. */
  readonly subjectAltNames: SubjectAltNames | null;
}

interface Extension {
  readonly critical: boolean;
  readonly value: Uint8Array;
}

// GeneralName CHOICE tags (RFC 5280 §4.2.1.6), IMPLICIT primitives.
const GENERAL_NAME_EMAIL = 0x81;
const GENERAL_NAME_DNS = 0x82;
const GENERAL_NAME_URI = 0x86;
const GENERAL_NAME_IP = 0x87;

function escapeValue(text: string): string {
  // @peculiar/x509's escaping, kept byte for byte (the \r\n\t rule replaces the first occurrence only).
  return text
    .replace(/([,+"\\<>;])/g, '\\$1')
    .replace(/^([ #])/, '\\$1')
    .replace(/([ ]$)/, '\\$1')
    .replace(/([\r\n\t])/, (char) => `\\${Buffer.from(char, 'utf8').toString('hex').toUpperCase()}`);
}

/** RFC 4514-style text of a Name, RDNs in certificate order joined by ", " (multi-valued RDNs by "+"). */
export function formatName(name: readonly (readonly NameAttribute[])[]): string {
  return name
    .map((rdn) => rdn.map((attribute) => `${ATTRIBUTE_NAMES[attribute.type] ?? attribute.type}=${attribute.isString ? escapeValue(attribute.value) : attribute.value}`).join('+'))
    .join(', ');
}

/** The values of one attribute type in a Name, e.g. every `O`. */
export function nameValues(name: readonly (readonly NameAttribute[])[], type: string): string[] {
  return name.flatMap((rdn) => rdn.filter((attribute) => attribute.type === type).map((attribute) => attribute.value));
}

function parseName(bytes: Uint8Array, nameElement: Element): NameAttribute[][] {
  return children(bytes, expectTag(nameElement, TAG.SEQUENCE, 'Name')).map((rdn) =>
    children(bytes, expectTag(rdn, TAG.SET, 'RelativeDistinguishedName')).map((attribute) => {
      const [type, value] = children(bytes, expectTag(attribute, TAG.SEQUENCE, 'AttributeTypeAndValue'));
      if (value === undefined) throw new Error('DER: attribute value expected');
      const text = decodeString(bytes, value);
      return {
        type: decodeOid(contents(bytes, expectTag(type, TAG.OID, 'attribute type'))),
        value: text ?? `#${Buffer.from(encoded(bytes, value)).toString('hex')}`,
        isString: text !== null,
      };
    }),
  );
}

function formatIpv6(address: Uint8Array): string {
  const groups: string[] = [];
  for (let index = 0; index < 16; index += 2) groups.push((((address[index] as number) << 8) | (address[index + 1] as number)).toString(16));
  // The longest run of zero groups (the first of equal ones), when longer than one group, becomes "::".
  let bestStart = -1;
  let bestLength = 0;
  for (let index = 0; index < groups.length; ) {
    if (groups[index] !== '0') {
      index += 1;
      continue;
    }
    let end = index;
    while (end < groups.length && groups[end] === '0') end += 1;
    if (end - index > bestLength) {
      bestStart = index;
      bestLength = end - index;
    }
    index = end;
  }
  if (bestLength <= 1) return groups.join(':');
  return `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLength).join(':')}`;
}

function formatIp(address: Uint8Array): string {
  if (address.length === 4) return Array.from(address).join('.');
  if (address.length === 16) return formatIpv6(address);
  return Buffer.from(address).toString('hex');
}

function parseSubjectAltNames(value: Uint8Array): SubjectAltNames {
  const names = { uris: [] as string[], dnsNames: [] as string[], ipAddresses: [] as string[], emails: [] as string[] };
  for (const name of children(value, expectTag(readSingle(value), TAG.SEQUENCE, 'GeneralNames'))) {
    const raw = Buffer.from(contents(value, name));
    if (name.tag === GENERAL_NAME_URI) names.uris.push(raw.toString('latin1'));
    else if (name.tag === GENERAL_NAME_DNS) names.dnsNames.push(raw.toString('latin1'));
    else if (name.tag === GENERAL_NAME_IP) names.ipAddresses.push(formatIp(raw));
    else if (name.tag === GENERAL_NAME_EMAIL) names.emails.push(raw.toString('latin1'));
  }
  return names;
}

function parseExtensions(bytes: Uint8Array, wrapper: Element | undefined): Map<string, Extension> {
  const extensions = new Map<string, Extension>();
  if (wrapper === undefined) return extensions;
  const [list] = children(bytes, wrapper);
  for (const extension of children(bytes, expectTag(list, TAG.SEQUENCE, 'Extensions'))) {
    const fields = children(bytes, expectTag(extension, TAG.SEQUENCE, 'Extension'));
    const id = decodeOid(contents(bytes, expectTag(fields[0], TAG.OID, 'extension id')));
    const critical = fields.length === 3 && fields[1]?.tag === TAG.BOOLEAN && contents(bytes, fields[1])[0] !== 0;
    const value = expectTag(fields[fields.length - 1], TAG.OCTET_STRING, 'extension value');
    // RFC 5280 §4.2: at most one instance of an extension; two could carry two different identities.
    if (extensions.has(id)) throw new Error(`certificate repeats extension ${id}`);
    extensions.set(id, { critical, value: contents(bytes, value) });
  }
  return extensions;
}

function parseBasicConstraints(value: Uint8Array): boolean {
  const [first] = children(value, expectTag(readSingle(value), TAG.SEQUENCE, 'BasicConstraints'));
  return first !== undefined && first.tag === TAG.BOOLEAN && contents(value, first)[0] !== 0;
}

function parseKeyUsage(value: Uint8Array): number[] {
  const bits = contents(value, expectTag(readSingle(value), TAG.BIT_STRING, 'KeyUsage'));
  const set: number[] = [];
  // The first byte counts the unused bits of the last byte; named bits follow, most significant first.
  for (let index = 1; index < bits.length; index += 1) {
    for (let bit = 0; bit < 8; bit += 1) if (((bits[index] as number) & (0x80 >> bit)) !== 0) set.push((index - 1) * 8 + bit);
  }
  return set;
}

function parseExtendedKeyUsage(value: Uint8Array): string[] {
  return children(value, expectTag(readSingle(value), TAG.SEQUENCE, 'ExtKeyUsageSyntax')).map((purpose) => decodeOid(contents(value, expectTag(purpose, TAG.OID, 'KeyPurposeId'))));
}

function parseOcspResponders(value: Uint8Array): string[] {
  const urls: string[] = [];
  for (const description of children(value, expectTag(readSingle(value), TAG.SEQUENCE, 'AuthorityInfoAccessSyntax'))) {
    const [method, location] = children(value, expectTag(description, TAG.SEQUENCE, 'AccessDescription'));
    if (decodeOid(contents(value, expectTag(method, TAG.OID, 'accessMethod'))) !== OID.adOcsp) continue;
    if (location?.tag === GENERAL_NAME_URI) urls.push(Buffer.from(contents(value, location)).toString('latin1'));
  }
  return urls;
}

/** Parses a DER certificate; throws on anything malformed. */
export function parseCertificate(der: Uint8Array): ParsedCertificate {
  const certificate = children(der, expectTag(readSingle(der), TAG.SEQUENCE, 'Certificate'));
  const tbs = children(der, expectTag(certificate[0], TAG.SEQUENCE, 'TBSCertificate'));
  // version [0] EXPLICIT is optional (absent = v1).
  const fields = tbs[0]?.tag === 0xa0 ? tbs.slice(1) : tbs;
  const [serial, , , validity, subject, publicKeyInfo, ...optional] = fields;
  const [notBefore, notAfter] = children(der, expectTag(validity, TAG.SEQUENCE, 'Validity'));
  if (notBefore === undefined || notAfter === undefined) throw new Error('DER: validity times expected');
  const subjectName = expectTag(subject, TAG.SEQUENCE, 'subject');
  const spki = expectTag(publicKeyInfo, TAG.SEQUENCE, 'SubjectPublicKeyInfo');
  const keyBits = expectTag(children(der, spki)[1], TAG.BIT_STRING, 'subjectPublicKey');
  const extensions = parseExtensions(der, optional.find((element) => element.tag === 0xa3));
  const basicConstraints = extensions.get(OID.basicConstraints);
  const keyIdentifier = extensions.get(OID.subjectKeyIdentifier);
  const san = extensions.get(OID.subjectAltName);
  const keyUsage = extensions.get(OID.keyUsage);
  const extendedKeyUsage = extensions.get(OID.extendedKeyUsage);
  const authorityInfo = extensions.get(OID.authorityInfoAccess);
  return {
    notBefore: decodeTime(der, notBefore),
    notAfter: decodeTime(der, notAfter),
    subjectDer: encoded(der, subjectName),
    subject: parseName(der, subjectName),
    subjectPublicKeyInfo: encoded(der, spki),
    subjectPublicKey: contents(der, keyBits).subarray(1),
    serialNumber: contents(der, expectTag(serial, TAG.INTEGER, 'serialNumber')),
    isCa: basicConstraints === undefined ? null : parseBasicConstraints(basicConstraints.value),
    keyUsageBits: keyUsage === undefined ? null : parseKeyUsage(keyUsage.value),
    extendedKeyUsages: extendedKeyUsage === undefined ? null : parseExtendedKeyUsage(extendedKeyUsage.value),
    ocspResponderUrls: authorityInfo === undefined ? [] : parseOcspResponders(authorityInfo.value),
    subjectKeyIdentifier: keyIdentifier === undefined ? null : contents(keyIdentifier.value, expectTag(readSingle(keyIdentifier.value), TAG.OCTET_STRING, 'SubjectKeyIdentifier')),
    subjectAltNames: san === undefined ? null : parseSubjectAltNames(san.value),
  };
}
