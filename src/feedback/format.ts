// The network-sync feedback datagram (docs/protocol.md), version 2: from a gateway's LAN
// address to a sending host, UDP port 7601 by default, inside the authentication envelope
// (or bare, from a gateway run with --insecure-no-auth). Big-endian.
//
//   0  u16 magic 0x4D46 ("MF")   2  u8 version (2)   3  u8 flags (0)
//   4  u16 entry count           6  u16 reserved (0)
//   8  u32 datagram sequence (per gateway, wrapping)
//  12  count x 40-byte entries:
//       0 u32 sender address   4 u32 receiver address   8 u16 sender port   10 u16 receiver port
//      12 u32 entry flags (bit 0: the gateway did not see the SYN; offsets are not from the stream start)
//      16 u64 network-safe offset: bytes from the start of the stream that are on the wire with all
//         their repairs
//      24 u64 sent offset: bytes from the start of the stream forwarded so far
//      32 u8 repairs sent for the newest bytes   33 u8 repairs per packet (c)   34 u16 reserved
//      36 u32 reserved
// The numbers are the native format's (native/netsync/feedback_format.h), read from the addon.
import { ConfigError } from '../errors';
import { FEEDBACK_ENTRY_BYTES, FEEDBACK_HEADER_BYTES, FEEDBACK_ISN_GUESSED, FEEDBACK_MAGIC, FEEDBACK_PORT, FEEDBACK_VERSION } from '../native/constants';

export { FEEDBACK_ENTRY_BYTES, FEEDBACK_HEADER_BYTES, FEEDBACK_PORT };

export interface FlowKey {
  senderAddress: string;
  senderPort: number;
  receiverAddress: string;
  receiverPort: number;
}

export interface FeedbackEntry extends FlowKey {
  isnGuessed: boolean;
  safeOffset: bigint;
  sentOffset: bigint;
  repairsSent: number;
  repairsPerPacket: number;
}

export interface FeedbackDatagram {
  sequence: number;
  entries: FeedbackEntry[];
}

export type FeedbackParseError = 'truncated' | 'bad_magic' | 'bad_version' | 'bad_flags' | 'bad_length' | 'bad_entry';

function ipv4(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

function writeIpv4(b: Buffer, at: number, addr: string): void {
  const parts = addr.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new ConfigError(`not an IPv4 address: ${addr}`);
  parts.forEach((p, i) => { b[at + i] = p; });
}

export function flowId(k: FlowKey): string {
  return `${k.senderAddress}:${k.senderPort}>${k.receiverAddress}:${k.receiverPort}`;
}

// Parses without trusting any length or count.
export function parseFeedback(b: Buffer): FeedbackDatagram | { error: FeedbackParseError } {
  if (b.length < FEEDBACK_HEADER_BYTES) return { error: 'truncated' };
  if (b.readUInt16BE(0) !== FEEDBACK_MAGIC) return { error: 'bad_magic' };
  if (b[2] !== FEEDBACK_VERSION) return { error: 'bad_version' };
  if (b[3] !== 0 || b.readUInt16BE(6) !== 0) return { error: 'bad_flags' };
  const count = b.readUInt16BE(4);
  const want = FEEDBACK_HEADER_BYTES + count * FEEDBACK_ENTRY_BYTES;
  if (b.length < want) return { error: 'truncated' };
  if (b.length > want || count === 0) return { error: 'bad_length' };
  const entries: FeedbackEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = FEEDBACK_HEADER_BYTES + i * FEEDBACK_ENTRY_BYTES;
    const flags = b.readUInt32BE(at + 12);
    const safeOffset = b.readBigUInt64BE(at + 16);
    const sentOffset = b.readBigUInt64BE(at + 24);
    const repairsSent = b[at + 32];
    const repairsPerPacket = b[at + 33];
    if ((flags & ~FEEDBACK_ISN_GUESSED) !== 0 || safeOffset > sentOffset || repairsSent > repairsPerPacket) return { error: 'bad_entry' };
    entries.push({
      senderAddress: ipv4(b, at),
      receiverAddress: ipv4(b, at + 4),
      senderPort: b.readUInt16BE(at + 8),
      receiverPort: b.readUInt16BE(at + 10),
      isnGuessed: (flags & FEEDBACK_ISN_GUESSED) !== 0,
      safeOffset,
      sentOffset,
      repairsSent,
      repairsPerPacket,
    });
  }
  return { sequence: b.readUInt32BE(8), entries };
}

export function encodeFeedback(d: FeedbackDatagram): Buffer {
  const b = Buffer.alloc(FEEDBACK_HEADER_BYTES + d.entries.length * FEEDBACK_ENTRY_BYTES);
  b.writeUInt16BE(FEEDBACK_MAGIC, 0);
  b[2] = FEEDBACK_VERSION;
  b.writeUInt16BE(d.entries.length, 4);
  b.writeUInt32BE(d.sequence >>> 0, 8);
  d.entries.forEach((e, i) => {
    const at = FEEDBACK_HEADER_BYTES + i * FEEDBACK_ENTRY_BYTES;
    writeIpv4(b, at, e.senderAddress);
    writeIpv4(b, at + 4, e.receiverAddress);
    b.writeUInt16BE(e.senderPort, at + 8);
    b.writeUInt16BE(e.receiverPort, at + 10);
    b.writeUInt32BE(e.isnGuessed ? FEEDBACK_ISN_GUESSED : 0, at + 12);
    b.writeBigUInt64BE(e.safeOffset, at + 16);
    b.writeBigUInt64BE(e.sentOffset, at + 24);
    b[at + 32] = e.repairsSent;
    b[at + 33] = e.repairsPerPacket;
  });
  return b;
}
