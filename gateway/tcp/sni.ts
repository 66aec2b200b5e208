/**
 * The server_name of a TLS ClientHello (RFC 8446 §4.1.2, RFC 6066 §3), read from the first bytes of a
 * connection without terminating it. Only the first handshake record is read: a ClientHello split over
 * several records (legal, never seen from real clients) is treated as having no SNI.
 */

const HANDSHAKE_RECORD = 0x16;
const CLIENT_HELLO = 0x01;
const SERVER_NAME_EXTENSION = 0x0000;
const HOST_NAME = 0x00;

/** The SNI; null when the bytes are not a ClientHello or it names no server; undefined while more bytes are needed. */
export function readClientHelloSni(data: Buffer): string | null | undefined {
  if (data.length < 5) return data.length === 0 || data[0] === HANDSHAKE_RECORD ? undefined : null;
  if (data[0] !== HANDSHAKE_RECORD) return null;
  const recordLength = data.readUInt16BE(3);
  if (data.length < 5 + recordLength) return undefined;
  const record = data.subarray(5, 5 + recordLength);
  if (record.length < 4 || record[0] !== CLIENT_HELLO) return null;
  const helloLength = record.readUIntBE(1, 3);
  const hello = record.subarray(4, 4 + helloLength);
  if (hello.length < helloLength) return null;
  // client_version (2) + random (32)
  let at = 34;
  const skip = (lengthBytes: number): boolean => {
    if (at + lengthBytes > hello.length) return false;
    const length = hello.readUIntBE(at, lengthBytes);
    at += lengthBytes + length;
    return at <= hello.length;
  };
  if (!skip(1) || !skip(2) || !skip(1)) return null;
  if (at + 2 > hello.length) return null;
  const extensionsEnd = Math.min(hello.length, at + 2 + hello.readUInt16BE(at));
  at += 2;
  while (at + 4 <= extensionsEnd) {
    const type = hello.readUInt16BE(at);
    const length = hello.readUInt16BE(at + 2);
    const body = hello.subarray(at + 4, at + 4 + length);
    at += 4 + length;
    if (type !== SERVER_NAME_EXTENSION) continue;
    let offset = 2;
    while (offset + 3 <= body.length) {
      const nameType = body[offset];
      const nameLength = body.readUInt16BE(offset + 1);
      const name = body.subarray(offset + 3, offset + 3 + nameLength);
      if (nameType === HOST_NAME && name.length === nameLength) return name.toString('ascii').toLowerCase();
      offset += 3 + nameLength;
    }
    return null;
  }
  return null;
}
