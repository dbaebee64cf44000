/**
 * Message codec: WireMessage (a plain discriminated union) ⇄ frames, with every cap enforced on decode.
 *
 * Encoding returns the header frame as one Buffer; a Piece's payload is not encoded at all; the caller writes it
 * after the frame as it is (writev). Decoding is incremental (`WireDecoder.push` takes chunks of any size) and
 * emits `{ message, payload }` where a Piece's payload is the list of slices of the received chunks that hold its
 * bytes, in order: one Buffer when the bytes arrived contiguously, several when they spanned chunks, none for a
 * zero-length piece. Nothing is copied (except runs of tiny slices, see COALESCE_BELOW) and nothing is allocated for
 * a claimed length before the bytes arrive.
 *
 * Every violation throws a WireError whose wireCode the connection sends to the peer in Error(code) before closing.
 */
import { METAINFO_LIMITS } from '../swarm/metainfo.ts';
import { layerswarm } from './gen/wire.gen.js';
import { ByteQueue, frame, MAX_HEADER_BYTES } from './frame.ts';
import { WIRE_ERROR_CODES, WireError, wireErrorCodeOf, type WireErrorCode } from './errors.ts';

const pb = layerswarm.wire.v1;

/** The wire protocol version this code speaks (Handshake.protocol_version). */
export const PROTOCOL_VERSION = 1;

/** Every limit a decoder enforces (docs/LIMITS.md material). */
export const WIRE_LIMITS = {
  /** Encoded header cap (frame length). */
  maxHeaderBytes: MAX_HEADER_BYTES,
  /** Handshake.peer_id is exactly this long. */
  peerIdBytes: 20,
  /** Handshake.piece_count range. */
  maxPieces: METAINFO_LIMITS.maxPieces,
  /** Handshake.piece_length range (powers of two). */
  minPieceLength: METAINFO_LIMITS.minPieceLength,
  maxPieceLength: METAINFO_LIMITS.maxPieceLength,
  /** Handshake.digest: "sha256:" + 64 hex. */
  maxDigestLength: 71,
  /** Error.message is cut to this many characters on encode and decode. */
  maxErrorMessageLength: 1024,
} as const;

export interface HandshakeMessage {
  readonly kind: 'handshake';
  readonly protocolVersion: number;
  /** 20 bytes. */
  readonly peerId: Uint8Array;
  /** "sha256:<hex>" */
  readonly digest: string;
  readonly pieceCount: number;
  readonly pieceLength: number;
  /** ceil(pieceCount / 8) bytes, MSB first, spare bits zero. */
  readonly bitfield: Uint8Array;
}
export interface PieceMessage {
  readonly kind: 'piece';
  readonly piece: number;
  /** Payload bytes that follow the header. */
  readonly length: number;
}
export interface ErrorMessage {
  readonly kind: 'error';
  readonly code: WireErrorCode;
  readonly message: string;
}
export type WireMessage =
  | HandshakeMessage
  | { readonly kind: 'have' | 'request' | 'cancel'; readonly piece: number }
  | PieceMessage
  | ErrorMessage
  | { readonly kind: 'complete' | 'keepAlive' };

export type MessageKind = WireMessage['kind'];

/** A decoded message; `payload` is present exactly for a Piece (slices of received chunks, see the module doc). */
export type Received =
  | { readonly message: Exclude<WireMessage, PieceMessage>; readonly payload?: undefined }
  | { readonly message: PieceMessage; readonly payload: readonly Buffer[] };

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

const isUint32 = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff;
const isPowerOfTwo = (n: number): boolean => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;

/** Checks what can be checked of one message on its own; throws WireError(MALFORMED_MESSAGE | UNSUPPORTED_VERSION). */
export function validateMessage(m: WireMessage): void {
  const bad = (why: string): WireError => new WireError('MALFORMED_MESSAGE', `${m.kind}: ${why}`);
  switch (m.kind) {
    case 'handshake': {
      if (!isUint32(m.protocolVersion)) throw bad('protocol_version out of range');
      if (m.protocolVersion !== PROTOCOL_VERSION) {
        throw new WireError('UNSUPPORTED_VERSION', `protocol version ${m.protocolVersion} is not supported (speaks ${PROTOCOL_VERSION})`);
      }
      if (m.peerId.byteLength !== WIRE_LIMITS.peerIdBytes) throw bad(`peer_id is ${m.peerId.byteLength} bytes, not ${WIRE_LIMITS.peerIdBytes}`);
      if (m.digest.length > WIRE_LIMITS.maxDigestLength || !DIGEST_RE.test(m.digest)) throw bad('digest is not sha256:<64 lowercase hex>');
      if (!Number.isInteger(m.pieceCount) || m.pieceCount < 1 || m.pieceCount > WIRE_LIMITS.maxPieces) throw bad(`piece_count ${m.pieceCount} out of range`);
      if (!isPowerOfTwo(m.pieceLength) || m.pieceLength < WIRE_LIMITS.minPieceLength || m.pieceLength > WIRE_LIMITS.maxPieceLength) {
        throw bad(`piece_length ${m.pieceLength} is not a power of two in range`);
      }
      const bytes = Math.ceil(m.pieceCount / 8);
      if (m.bitfield.byteLength !== bytes) throw bad(`bitfield is ${m.bitfield.byteLength} bytes, not ${bytes}`);
      const spare = bytes * 8 - m.pieceCount;
      if (spare > 0 && ((m.bitfield[bytes - 1] as number) & ((1 << spare) - 1)) !== 0) throw bad('bitfield has spare bits set');
      return;
    }
    case 'have':
    case 'request':
    case 'cancel':
      if (!isUint32(m.piece)) throw bad('piece out of range');
      return;
    case 'piece':
      if (!isUint32(m.piece) || !isUint32(m.length)) throw bad('piece or length out of range');
      return;
    case 'error':
      if (!(m.code in WIRE_ERROR_CODES) || m.code === ('UNSPECIFIED' as string)) throw bad(`unknown code ${String(m.code)}`);
      return;
    case 'complete':
    case 'keepAlive':
      return;
  }
}

function toProto(m: WireMessage): layerswarm.wire.v1.Message.$Properties {
  switch (m.kind) {
    case 'handshake':
      return {
        handshake: { protocolVersion: m.protocolVersion, peerId: m.peerId, digest: m.digest, pieceCount: m.pieceCount, pieceLength: m.pieceLength, bitfield: m.bitfield },
      };
    case 'have':
      return { have: { piece: m.piece } };
    case 'request':
      return { request: { piece: m.piece } };
    case 'cancel':
      return { cancel: { piece: m.piece } };
    case 'piece':
      return { piece: { piece: m.piece, length: m.length } };
    case 'error':
      return { error: { code: WIRE_ERROR_CODES[m.code], message: m.message.slice(0, WIRE_LIMITS.maxErrorMessageLength) } };
    case 'complete':
      return { complete: {} };
    case 'keepAlive':
      return { keepAlive: {} };
  }
}

/**
 * The frame (length prefix + header) for `message`, one Buffer. A Piece's payload is not included: write its
 * `length` bytes right after. Throws WireError for a message a peer would reject (a local bug).
 */
export function encodeMessage(message: WireMessage): Buffer {
  validateMessage(message);
  const body = pb.Message.encode(toProto(message)).finish();
  if (body.byteLength > MAX_HEADER_BYTES) throw new WireError('FRAME_TOO_LARGE', `${message.kind} header is ${body.byteLength} bytes`);
  return frame(body);
}

const KINDS = ['handshake', 'have', 'request', 'piece', 'cancel', 'error', 'complete', 'keepAlive'] as const;

function fromProto(p: layerswarm.wire.v1.Message): WireMessage {
  const set = KINDS.filter((k) => p[k] != null);
  if (set.length !== 1) throw new WireError('MALFORMED_MESSAGE', set.length === 0 ? 'envelope carries no message' : `envelope carries ${set.join(', ')}`);
  switch (set[0]) {
    case 'handshake': {
      const h = p.handshake as layerswarm.wire.v1.Handshake.$Properties;
      return {
        kind: 'handshake',
        protocolVersion: h.protocolVersion ?? 0,
        // Copies: small, and they must not pin the received chunk.
        peerId: Buffer.from(h.peerId ?? []),
        digest: h.digest ?? '',
        pieceCount: h.pieceCount ?? 0,
        pieceLength: h.pieceLength ?? 0,
        bitfield: Buffer.from(h.bitfield ?? []),
      };
    }
    case 'have':
    case 'request':
    case 'cancel':
      return { kind: set[0], piece: p[set[0]]?.piece ?? 0 };
    case 'piece':
      return { kind: 'piece', piece: p.piece?.piece ?? 0, length: p.piece?.length ?? 0 };
    case 'error':
      return {
        kind: 'error',
        code: wireErrorCodeOf(p.error?.code ?? 0),
        message: (p.error?.message ?? '').slice(0, WIRE_LIMITS.maxErrorMessageLength),
      };
    case 'complete':
      return { kind: 'complete' };
    default:
      return { kind: 'keepAlive' };
  }
}

/** Decode one header (the frame body, without the length prefix); validates the message on its own. */
export function decodeHeader(body: Uint8Array): WireMessage {
  let p: layerswarm.wire.v1.Message;
  try {
    p = pb.Message.decode(body);
  } catch (err) {
    throw new WireError('MALFORMED_MESSAGE', `undecodable header: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const m = fromProto(p);
  validateMessage(m);
  return m;
}

/**
 * Payload slices shorter than this are copied into a shared buffer of ≤ COALESCE_BYTES instead of being kept as
 * they are, so a peer dribbling tiny TCP segments cannot make a piece cost a Buffer object per byte. Normal reads
 * (tens of KiB) stay zero-copy; the copying costs at most the bytes that arrived this way.
 */
export const COALESCE_BELOW = 1024;
export const COALESCE_BYTES = 16 * 1024;

export interface DecoderOptions {
  /** Local cap on Piece payloads, also ≤ METAINFO_LIMITS.maxPieceLength. Default METAINFO_LIMITS.maxPieceLength. */
  readonly maxPieceLength?: number;
}

/**
 * Incremental decoder for one direction of one connection. Enforces, beyond validateMessage: the frame cap before
 * buffering a header, Handshake (or Error) first and only once, piece indexes < the handshake's piece_count, and
 * Piece lengths ≤ min(handshake piece_length, maxPieceLength). After a throw the decoder is dead: every later call
 * throws the same error.
 */
export class WireDecoder {
  readonly #queue = new ByteQueue();
  readonly #maxPieceLength: number;
  #handshake: HandshakeMessage | undefined;
  /** The Piece header whose payload is being collected, and what has arrived of it. */
  #piece: PieceMessage | undefined;
  #payload: Buffer[] = [];
  #remaining = 0;
  /** Copy target for runs of small slices, and how much of it is used. */
  #tail: Buffer | undefined;
  #tailUsed = 0;
  #error: WireError | undefined;

  constructor(options: DecoderOptions = {}) {
    this.#maxPieceLength = Math.min(options.maxPieceLength ?? METAINFO_LIMITS.maxPieceLength, METAINFO_LIMITS.maxPieceLength);
  }

  /** The peer's handshake once decoded. */
  get handshake(): HandshakeMessage | undefined {
    return this.#handshake;
  }

  /** True between frames (nothing partial is held). */
  get idle(): boolean {
    return this.#queue.length === 0 && this.#piece === undefined;
  }

  /**
   * Feed received bytes; appends the messages they complete to `out` (in order) and returns it. On a violation it
   * throws, and `out` keeps the messages that preceded it (pass your own array to deliver them).
   */
  push(chunk: Buffer, out: Received[] = []): Received[] {
    if (this.#error) throw this.#error;
    this.#queue.push(chunk);
    try {
      for (;;) {
        if (this.#piece) {
          this.#queue.take(Math.min(this.#remaining, this.#queue.length), this.#addPayload);
          if (this.#remaining > 0) break;
          this.#flushTail();
          out.push({ message: this.#piece, payload: this.#payload });
          this.#piece = undefined;
          this.#payload = [];
          continue;
        }
        const length = this.#queue.peekUInt32BE();
        if (length === undefined) break;
        if (length > MAX_HEADER_BYTES) throw new WireError('FRAME_TOO_LARGE', `frame of ${length} bytes exceeds ${MAX_HEADER_BYTES}`);
        if (this.#queue.length < 4 + length) break;
        this.#queue.skip(4);
        const message = this.#accept(decodeHeader(this.#queue.takeContiguous(length)));
        if (message.kind === 'piece') {
          this.#piece = message;
          this.#remaining = message.length;
        } else {
          out.push({ message });
        }
      }
    } catch (err) {
      this.#error = err instanceof WireError ? err : new WireError('INTERNAL', String(err), { cause: err });
      throw this.#error;
    }
    return out;
  }

  /** The stream ended: throws WireError(MALFORMED_MESSAGE) when it ended inside a frame or a payload. */
  end(): void {
    if (this.#error) throw this.#error;
    if (!this.idle) {
      this.#error = new WireError('MALFORMED_MESSAGE', this.#piece ? `stream ended ${this.#remaining} bytes short of a piece payload` : 'stream ended inside a frame');
      throw this.#error;
    }
  }

  /** Append one received slice to the payload being collected (see COALESCE_BELOW). */
  readonly #addPayload = (slice: Buffer): void => {
    const n = slice.byteLength;
    if (n >= COALESCE_BELOW) {
      this.#flushTail();
      this.#payload.push(slice);
    } else {
      if (this.#tail && this.#tailUsed + n > this.#tail.byteLength) this.#flushTail();
      // Sized by bytes still to come, at most COALESCE_BYTES: never by a claimed length beyond that.
      this.#tail ??= Buffer.allocUnsafeSlow(Math.min(COALESCE_BYTES, this.#remaining));
      slice.copy(this.#tail, this.#tailUsed);
      this.#tailUsed += n;
    }
    this.#remaining -= n;
  };

  #flushTail(): void {
    if (this.#tail) this.#payload.push(this.#tail.subarray(0, this.#tailUsed));
    this.#tail = undefined;
    this.#tailUsed = 0;
  }

  #accept(m: WireMessage): WireMessage {
    const hs = this.#handshake;
    if (m.kind === 'error') return m;
    if (m.kind === 'handshake') {
      if (hs) throw new WireError('UNEXPECTED_MESSAGE', 'second handshake');
      this.#handshake = m;
      return m;
    }
    if (!hs) throw new WireError('UNEXPECTED_MESSAGE', `${m.kind} before the handshake`);
    if ('piece' in m && m.piece >= hs.pieceCount) throw new WireError('PIECE_OUT_OF_RANGE', `${m.kind} of piece ${m.piece} of ${hs.pieceCount}`);
    if (m.kind === 'piece') {
      const cap = Math.min(hs.pieceLength, this.#maxPieceLength);
      if (m.length > cap) throw new WireError('PAYLOAD_TOO_LARGE', `piece payload of ${m.length} bytes exceeds ${cap}`);
    }
    return m;
  }
}
