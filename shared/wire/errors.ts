/** Wire error codes (the stable numbers of wire.proto's Error.Code) and the typed error that carries one. */
import { LayerswarmError } from '../errors.ts';

/** Error.Code name → number, exactly as in wire.proto (a unit test checks it against the generated enum). */
export const WIRE_ERROR_CODES = {
  UNSPECIFIED: 0,
  UNSUPPORTED_VERSION: 1,
  FRAME_TOO_LARGE: 2,
  PAYLOAD_TOO_LARGE: 3,
  MALFORMED_MESSAGE: 4,
  UNEXPECTED_MESSAGE: 5,
  PIECE_OUT_OF_RANGE: 6,
  DIGEST_UNKNOWN: 7,
  HANDSHAKE_MISMATCH: 8,
  OVERLOADED: 9,
  SHUTTING_DOWN: 10,
  INTERNAL: 11,
} as const;

export type WireErrorCode = Exclude<keyof typeof WIRE_ERROR_CODES, 'UNSPECIFIED'>;

const BY_NUMBER = new Map<number, WireErrorCode>(
  Object.entries(WIRE_ERROR_CODES).filter(([name]) => name !== 'UNSPECIFIED').map(([name, n]) => [n, name as WireErrorCode]),
);

/** The code for a number received from a peer; unknown numbers (and UNSPECIFIED) read as INTERNAL. */
export function wireErrorCodeOf(n: number): WireErrorCode {
  return BY_NUMBER.get(n) ?? 'INTERNAL';
}

/**
 * A wire protocol error: LayerswarmError code PROTOCOL_ERROR plus the wire code. `remote` is true when the peer sent
 * it to us (an Error message), false when we detected it (and sent it to the peer).
 */
export class WireError extends LayerswarmError {
  readonly wireCode: WireErrorCode;
  readonly remote: boolean;

  constructor(wireCode: WireErrorCode, message: string, options: { remote?: boolean; cause?: unknown } = {}) {
    super('PROTOCOL_ERROR', message, { cause: options.cause, detail: { wireCode } });
    this.wireCode = wireCode;
    this.remote = options.remote ?? false;
  }
}

export function isWireError(err: unknown, wireCode?: WireErrorCode): err is WireError {
  return err instanceof WireError && (wireCode === undefined || err.wireCode === wireCode);
}
