/** The seam between a Torrent and its engine (and what a torrent is made from). */
import type { Logger } from '../../../shared/logging.ts';
import type { Metainfo } from '../../../shared/swarm/metainfo.ts';
import type { Connection, Transport } from '../../../shared/wire/transport.ts';
import type { Rng } from '../scheduler/types.ts';
import type { Announce } from './announce.ts';
import type { SwarmEngineConfig } from './config.ts';
import type { PieceFile } from './piece-file.ts';
import type { PieceSource } from './piece-source.ts';
import type { SwarmEngineEvents } from './stats.ts';

/** What a torrent needs from its engine. */
export interface TorrentHost {
  readonly selfId: string;
  readonly transport: Transport;
  readonly announce: Announce;
  readonly config: SwarmEngineConfig;
  /** The port our listener accepts on (announced). */
  listenPort(): number;
  /** Whether another connection fits under the engine-wide cap. */
  connectionAvailable(): boolean;
  /** Count a connection against the engine-wide cap until it closes. */
  track(connection: Connection): void;
  readonly rng: Rng;
  readonly events?: SwarmEngineEvents | undefined;
}

export interface TorrentInit {
  readonly meta: Metainfo;
  /** Downloading: the partial file (also the upload source). */
  readonly file?: PieceFile;
  /** Seeding: a complete source. Exactly one of file and source. */
  readonly source?: PieceSource;
  readonly log: Logger;
}
