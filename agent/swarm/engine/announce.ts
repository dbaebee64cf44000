/**
 * Announcing: the engine asks an injected `Announce` function for peers (the tracker in production, an in-memory
 * stub in tests). `trackerAnnounce` adapts a TrackerClient. Peer addresses travel as "host:port" ("[v6]:port").
 */
import { LayerswarmError } from '../../../shared/errors.ts';
import type { WireAddress } from '../../../shared/wire/transport.ts';
import type { TrackerClient } from '../../../tracker/client.ts';
import type { AnnounceReason, DiscoveredPeer } from '../scheduler/types.ts';

export interface AnnounceInput {
  readonly digest: string;
  /** Our peer id (40 hex). */
  readonly peerId: string;
  /** The port our listener accepts on. */
  readonly port: number;
  readonly complete: boolean;
  /** Pieces we hold verified. */
  readonly pieces: number;
  readonly reason: AnnounceReason;
  /** True for a torrent started by seed(). */
  readonly seeding: boolean;
}

/** Ask for peers. Rejections are logged and retried at the next announce the scheduler asks for. */
export type Announce = (input: AnnounceInput, signal: AbortSignal) => Promise<readonly DiscoveredPeer[]>;

export function formatAddress(address: WireAddress): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}

export function parseAddress(address: string): WireAddress {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  const port = Number(m?.[3]);
  const host = m?.[1] ?? m?.[2];
  if (host === undefined || !Number.isInteger(port) || port < 1 || port > 65535) throw new LayerswarmError('PEER_UNAVAILABLE', `bad peer address ${JSON.stringify(address)}`);
  return { host, port };
}

export interface TrackerAnnounceOptions {
  /** The IP address other peers dial to reach our listener. */
  readonly address: string;
  readonly zone?: string;
  /** Announce as the seeder role (the tracker hands such peers out as complete). Default false. */
  readonly seeder?: boolean;
  /**
   * Byte counters of a torrent (since it started), sent with every announce so the tracker can show rates. Unset or
   * undefined: not sent.
   */
  readonly traffic?: (digest: string) => { readonly uploaded: number; readonly downloaded: number } | undefined;
}

/** An Announce over the tracker's HTTP API. */
export function trackerAnnounce(client: TrackerClient, options: TrackerAnnounceOptions): Announce {
  return async (input, signal) => {
    const traffic = options.traffic?.(input.digest);
    const result = await client.announce(
      {
        digest: input.digest, peerId: input.peerId, address: options.address, port: input.port, complete: input.complete, pieces: input.pieces,
        ...(options.zone === undefined ? {} : { zone: options.zone }),
        ...(options.seeder === true ? { seeder: true } : {}),
        ...(input.reason === 'stopped' ? { stopped: true } : {}),
        ...(traffic === undefined ? {} : { uploaded: Math.max(0, Math.floor(traffic.uploaded)), downloaded: Math.max(0, Math.floor(traffic.downloaded)) }),
      },
      signal,
    );
    return result.peers.map((p) => ({ peerId: p.peerId, address: formatAddress({ host: p.address, port: p.port }), complete: p.complete, ...(p.seeder === true ? { seeder: true } : {}) }));
  };
}
