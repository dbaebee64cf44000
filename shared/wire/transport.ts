/**
 * The seam between the swarm and the network. A Transport makes framed, duplex connections to peers; what runs over
 * them (handshake, piece exchange) lives above it. Implementations: tcp-transport.ts (plain TCP),
 * memory-transport.ts (in-process, for tests); an encrypted libp2p+noise transport can come later behind the same
 * interface. test/unit/transport-conformance.ts is the contract every implementation passes.
 */
import type { LayerswarmError } from '../errors.ts';
import type { Received, WireMessage } from './codec.ts';

export interface WireAddress {
  readonly host: string;
  /** 0 in listen() picks a free port. */
  readonly port: number;
}

export interface Listener {
  /** Where it listens (the real port when 0 was asked for). */
  readonly address: WireAddress;
  /** Stop accepting and close the connections it accepted that are still open. */
  close(): Promise<void>;
}

export interface Transport {
  /** Accept connections on `address`; `onConnection` gets each one as soon as it is established. */
  listen(address: WireAddress, onConnection: (connection: Connection) => void): Promise<Listener>;
  /**
   * Connect to a listener. `signal` bounds the connection attempt only (pass withTimeout(...) for a deadline).
   * Rejects with LayerswarmError ABORTED (signal) or PEER_UNAVAILABLE (refused, unreachable, reset).
   */
  connect(address: WireAddress, signal: AbortSignal): Promise<Connection>;
}

/**
 * One framed duplex connection. The receiving side enforces the protocol's ordering and caps (WireDecoder): any
 * violation by the peer sends Error(code) to it, closes the connection and surfaces as a WireError.
 */
export interface Connection {
  /** The peer's address, for logs ("host:port" or a transport-specific name). */
  readonly remote: string;
  /**
   * Send one message; a Piece's payload (exactly `length` bytes, one Buffer or several) follows its header without
   * being copied (TCP: one writev). Resolves once the transport has taken the bytes (flushed to the kernel for TCP),
   * so awaiting each send applies backpressure. The caller must not modify the payload until then. Rejects when the
   * connection is closed; throws LayerswarmError INTERNAL when the payload does not match the message.
   */
  send(message: WireMessage, payload?: Buffer | readonly Buffer[]): Promise<void>;
  /**
   * The peer's messages in order (call once). Reading applies backpressure: the connection stops reading from the
   * network while unread messages pile up. Ends when the connection closes cleanly (including after the peer's
   * Error message, which is yielded like any other); throws the error it closed with otherwise (a WireError we
   * detected, or PEER_UNAVAILABLE when the stream broke). A local close() ends it and discards unread messages.
   */
  messages(): AsyncIterable<Received>;
  /**
   * Close. With an error, first send Error(code) (a WireError's wireCode, else INTERNAL). Idempotent; never throws.
   */
  close(error?: LayerswarmError): void;
  /**
   * Resolves once the connection is fully closed: with undefined after a clean close, else with why it closed (a
   * local WireError, the peer's Error as a WireError with remote = true, or PEER_UNAVAILABLE). Never rejects.
   */
  readonly closed: Promise<LayerswarmError | undefined>;
}
