/**
 * PeerConn: one handshaken connection of a torrent to one peer. Runs the read loop (messages go to the torrent in
 * order; a handler that returns a promise, e.g. while a received piece is hashed and written, holds reading back,
 * which is the connection's backpressure), remembers which pieces we asked it for (so a Cancel from it reads as a
 * rejection, see torrent.ts), and sends without ever throwing at the caller.
 */
import type { Logger } from '../../../shared/logging.ts';
import type { LayerswarmError } from '../../../shared/errors.ts';
import type { Received, WireMessage } from '../../../shared/wire/codec.ts';
import type { Connection } from '../../../shared/wire/transport.ts';
import type { Bitfield } from '../scheduler/bitfield.ts';
import type { OpenedConnection } from './handshake.ts';
import type { PeerKind } from './stats.ts';

export interface PeerConnHandler {
  onMessage(conn: PeerConn, received: Received): Promise<void> | void;
  /** The read loop ended (clean close, peer Error, local close or failure). Called once. */
  onEnded(conn: PeerConn, error: LayerswarmError | undefined): void;
}

export class PeerConn {
  readonly peerId: string;
  /** We dialled it. */
  readonly outbound: boolean;
  readonly connection: Connection;
  /** Pieces requested from this peer and neither received nor cancelled yet. */
  readonly requested = new Set<number>();
  /** The peer's pieces: its handshake bitfield plus every Have since (for TorrentStats.usefulPeers). */
  readonly bitfield: Bitfield | undefined;
  /** What it was at connect (metrics label). */
  readonly kind: PeerKind;
  readonly #messages: AsyncIterator<Received>;
  readonly #log: Logger;
  #closed = false;

  constructor(opened: OpenedConnection, peerId: string, outbound: boolean, log: Logger, bitfield?: Bitfield) {
    this.bitfield = bitfield?.clone();
    this.kind = bitfield?.complete === true ? 'seeder' : 'agent';
    this.connection = opened.connection;
    this.#messages = opened.messages;
    this.peerId = peerId;
    this.outbound = outbound;
    this.#log = log;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Start reading; `handler.onEnded` runs once when the connection is over. */
  run(handler: PeerConnHandler): void {
    void (async () => {
      let error: LayerswarmError | undefined;
      try {
        for (;;) {
          const next = await this.#messages.next();
          if (next.done === true || this.#closed) break;
          await handler.onMessage(this, next.value);
        }
      } catch (err) {
        error = err as LayerswarmError;
      }
      this.#closed = true;
      this.connection.close();
      handler.onEnded(this, error ?? (await this.connection.closed));
    })();
  }

  /** Send and wait until the transport took the bytes. Rejects when the connection is closed. */
  send(message: WireMessage, payload?: Buffer | readonly Buffer[]): Promise<void> {
    return this.connection.send(message, payload);
  }

  /** Send without waiting; a failure only means the connection is going away (its read loop reports that). */
  post(message: WireMessage): void {
    if (this.#closed) return;
    this.connection.send(message).catch((err: unknown) => this.#log.debug({ err, peer: this.peerId, kind: message.kind }, 'send failed'));
  }

  close(error?: LayerswarmError): void {
    this.#closed = true;
    this.connection.close(error);
  }
}
