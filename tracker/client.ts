/**
 * TrackerClient: what agents and seeders use to talk to the tracker. undici with a connection pool, a deadline on
 * every call combined with the caller's signal, bounded response reads, and answers validated before they are
 * trusted. Every failure is a TrackerError: the tracker's own code (SWARM_FULL, NO_SEEDER, ...) when it answered
 * with one, TRACKER_UNAVAILABLE / TRACKER_TIMEOUT / TRACKER_ERROR for transport trouble, ABORTED for the caller's
 * signal.
 */
import { isIP } from 'node:net';
import { Agent, request, type Dispatcher } from 'undici';
import { parseMetainfo, type Metainfo } from '../shared/swarm/metainfo.ts';
import { isTrackerErrorCode, TrackerError } from './errors.ts';
import type { SwarmEvent } from './event-log.ts';
import type { OffloadReport } from './offload-series.ts';
import type { AnnounceBody, EventsBody, SwarmEventKind } from './schemas.ts';
import type { SwarmDetailView, SwarmView } from './swarm-views.ts';
import { MAX_METAINFO_BYTES, readLimited } from './metainfo-registry.ts';

export type AnnounceRequest = AnnounceBody;

export interface HandedOutPeer {
  peerId: string;
  address: string;
  port: number;
  complete: boolean;
  /** The seeder role (announced with seeder: true); absent for agents. */
  seeder?: true;
}

export interface AnnounceResult {
  peers: HandedOutPeer[];
  /** Milliseconds until the next announce. */
  intervalMs: number;
}

export interface MetainfoLookup {
  digest: string;
  /** Needed when the tracker may not know the metainfo yet (a seeder fetches the blob from this repository). */
  repository: string;
  registry?: string;
}

export type SwarmInfo = SwarmView;

export interface SwarmTotals {
  swarms: number;
  peers: number;
  seeders: number;
  upRate: number;
  downRate: number;
  /** Origin offload over the tracker's window (null: nothing committed yet). */
  offloadRatio: number | null;
  events: Record<SwarmEventKind, number>;
}

export interface SwarmList {
  swarms: SwarmInfo[];
  totals: SwarmTotals;
  /** The tracker's clock when it answered. */
  at: number;
}

export interface EventList {
  events: SwarmEvent[];
  lastId: number;
  dropped: number;
  counts: Record<SwarmEventKind, number>;
  at: number;
}

export interface TrackerClientOptions {
  /** http(s)://HOST:PORT of the tracker. */
  url: string;
  /** Deadline of announce, registerSeeder, putMetainfo and swarms. Default 10 s. */
  timeoutMs?: number;
  /** Deadline of getMetainfo (the tracker may wait for a seeder to hash the whole blob). Default 150 s. */
  metainfoTimeoutMs?: number;
  /** Seeders: the tracker's seeder token. */
  seederToken?: string;
  userAgent?: string;
  /** Default: an undici Agent owned (and closed) by the client. */
  dispatcher?: Dispatcher;
}

const MAX_ANSWER_BYTES = 1 << 20;
const PEER_ID = /^[0-9a-f]{40}$/;

export class TrackerClient {
  readonly #base: string;
  readonly #timeoutMs: number;
  readonly #metainfoTimeoutMs: number;
  readonly #headers: Record<string, string>;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;

  constructor(options: TrackerClientOptions) {
    this.#base = options.url.replace(/\/+$/, '');
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#metainfoTimeoutMs = options.metainfoTimeoutMs ?? 150_000;
    this.#headers = {
      'user-agent': options.userAgent ?? 'layerswarm/0.1',
      ...(options.seederToken ? { authorization: `Bearer ${options.seederToken}` } : {}),
    };
    this.#ownsDispatcher = options.dispatcher === undefined;
    this.#dispatcher = options.dispatcher ?? new Agent({ connect: { timeout: 5000 }, keepAliveTimeout: 30_000 });
  }

  async announce(req: AnnounceRequest, signal?: AbortSignal): Promise<AnnounceResult> {
    const raw = await this.#call('POST', '/v1/announce', req, this.#timeoutMs, MAX_ANSWER_BYTES, signal);
    return parseAnnounceAnswer(raw);
  }

  async getMetainfo(lookup: MetainfoLookup, signal?: AbortSignal): Promise<Metainfo> {
    const query = new URLSearchParams({ ...(lookup.repository ? { repository: lookup.repository } : {}), ...(lookup.registry ? { registry: lookup.registry } : {}) });
    const path = `/v1/metainfo/${encodeURIComponent(lookup.digest)}${query.size > 0 ? `?${query.toString()}` : ''}`;
    const raw = await this.#call('GET', path, undefined, this.#metainfoTimeoutMs, MAX_METAINFO_BYTES, signal);
    let meta: Metainfo;
    try {
      meta = parseMetainfo(raw);
    } catch (err) {
      throw new TrackerError('METAINFO_INVALID', `tracker sent invalid metainfo: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    if (meta.digest !== lookup.digest) throw new TrackerError('METAINFO_INVALID', `tracker sent metainfo for ${meta.digest}, asked for ${lookup.digest}`);
    return meta;
  }

  /** Register a seeder, or heartbeat: call again well within the returned ttl (seconds). */
  async registerSeeder(seeder: { id: string; url: string }, signal?: AbortSignal): Promise<{ id: string; url: string; ttl: number }> {
    const raw = await this.#call('POST', '/v1/seeders', seeder, this.#timeoutMs, MAX_ANSWER_BYTES, signal);
    const r = raw as Record<string, unknown> | null;
    if (typeof r?.id !== 'string' || typeof r.url !== 'string' || typeof r.ttl !== 'number') throw new TrackerError('TRACKER_ERROR', 'tracker sent a malformed seeder registration answer');
    return { id: r.id, url: r.url, ttl: r.ttl };
  }

  /** Publish metainfo a seeder computed. `created` is false when the tracker already had the same metainfo. */
  async putMetainfo(meta: Metainfo, signal?: AbortSignal): Promise<{ digest: string; created: boolean }> {
    const raw = await this.#call('PUT', '/v1/metainfo', meta, this.#timeoutMs, MAX_ANSWER_BYTES, signal);
    const r = raw as Record<string, unknown> | null;
    return { digest: String(r?.digest ?? meta.digest), created: r?.created === true };
  }

  async swarms(signal?: AbortSignal, limit = 1000): Promise<SwarmList> {
    const raw = await this.#call('GET', `/v1/swarms?limit=${limit}`, undefined, this.#timeoutMs, 16 * MAX_ANSWER_BYTES, signal);
    return expectObject<SwarmList>(raw, 'swarms', ['swarms', 'totals']);
  }

  /** One swarm's peers and availability; NOT_FOUND when nobody is in it. */
  async swarm(digest: string, signal?: AbortSignal, limit = 500): Promise<SwarmDetailView & { at: number }> {
    const raw = await this.#call('GET', `/v1/swarms/${encodeURIComponent(digest)}?limit=${limit}`, undefined, this.#timeoutMs, 16 * MAX_ANSWER_BYTES, signal);
    return expectObject<SwarmDetailView & { at: number }>(raw, 'swarm', ['peerList', 'availability']);
  }

  async events(since = 0, signal?: AbortSignal, limit = 100): Promise<EventList> {
    const raw = await this.#call('GET', `/v1/events?since=${since}&limit=${limit}`, undefined, this.#timeoutMs, 4 * MAX_ANSWER_BYTES, signal);
    return expectObject<EventList>(raw, 'events', ['events', 'counts']);
  }

  async offload(signal?: AbortSignal): Promise<OffloadReport & { at: number }> {
    const raw = await this.#call('GET', '/v1/offload', undefined, this.#timeoutMs, MAX_ANSWER_BYTES, signal);
    return expectObject<OffloadReport & { at: number }>(raw, 'offload', ['points', 'window']);
  }

  /** Agents: report swarm events and committed bytes (POST /v1/events). */
  async postEvents(body: EventsBody, signal?: AbortSignal): Promise<{ accepted: number; dropped: number }> {
    const raw = await this.#call('POST', '/v1/events', body, this.#timeoutMs, MAX_ANSWER_BYTES, signal);
    const r = raw as Record<string, unknown> | null;
    return { accepted: Number(r?.accepted ?? 0), dropped: Number(r?.dropped ?? 0) };
  }

  async close(): Promise<void> {
    if (this.#ownsDispatcher) await this.#dispatcher.close();
  }

  async #call(method: 'GET' | 'POST' | 'PUT', path: string, body: unknown, timeoutMs: number, limit: number, signal: AbortSignal | undefined): Promise<unknown> {
    const what = `${method} ${this.#base}${path.split('?')[0] ?? ''}`;
    if (signal?.aborted) throw new TrackerError('ABORTED', `${what}: aborted`, { cause: signal.reason });
    const deadline = AbortSignal.timeout(timeoutMs);
    const combined = signal ? AbortSignal.any([signal, deadline]) : deadline;
    let status: number;
    let text: string;
    try {
      const res = await request(`${this.#base}${path}`, {
        method,
        dispatcher: this.#dispatcher,
        signal: combined,
        headers: { ...this.#headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }), accept: 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      status = res.statusCode;
      text = await readLimited(res.body, limit, () => new TrackerError('TRACKER_ERROR', `${what}: answer exceeds ${limit} bytes`));
    } catch (err) {
      if (err instanceof TrackerError) throw err;
      if (signal?.aborted) throw new TrackerError('ABORTED', `${what}: aborted`, { cause: signal.reason });
      if (deadline.aborted) throw new TrackerError('TRACKER_TIMEOUT', `${what}: no answer within ${timeoutMs} ms`, { cause: err });
      throw new TrackerError('TRACKER_UNAVAILABLE', `${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      throw new TrackerError('TRACKER_ERROR', `${what}: answered ${status} with a body that is not JSON`);
    }
    if (status >= 200 && status < 300) return json;
    throw errorFromAnswer(what, status, json);
  }
}

function errorFromAnswer(what: string, status: number, json: unknown): TrackerError {
  const first = (json as { errors?: Array<{ code?: unknown; message?: unknown; detail?: unknown }> } | undefined)?.errors?.[0];
  const message = typeof first?.message === 'string' ? first.message.slice(0, 1000) : `answered ${status}`;
  const code = isTrackerErrorCode(first?.code) ? first.code : 'TRACKER_ERROR';
  return new TrackerError(code, `${what}: ${message}`, { status, detail: first?.detail });
}

/** A monitoring answer: an object with the given keys (its contents are shown, never acted upon). */
function expectObject<T>(raw: unknown, what: string, keys: readonly string[]): T {
  const r = raw as Record<string, unknown> | null;
  if (typeof r !== 'object' || r === null || keys.some((k) => !(k in r))) throw new TrackerError('TRACKER_ERROR', `malformed ${what} answer: expected ${keys.join(', ')}`);
  return r as T;
}

/** Validate an announce answer: the peer list is untrusted input. */
export function parseAnnounceAnswer(raw: unknown): AnnounceResult {
  const bad = (why: string): TrackerError => new TrackerError('TRACKER_ERROR', `malformed announce answer: ${why}`);
  const r = raw as { peers?: unknown; interval?: unknown } | null;
  if (typeof r !== 'object' || r === null) throw bad('not an object');
  if (!Array.isArray(r.peers) || r.peers.length > 1000) throw bad('peers must be a list of at most 1000');
  if (typeof r.interval !== 'number' || !Number.isInteger(r.interval) || r.interval < 1 || r.interval > 3600) throw bad('interval must be 1..3600 seconds');
  const peers = r.peers.map((p: unknown): HandedOutPeer => {
    const q = p as Record<string, unknown> | null;
    if (typeof q?.peerId !== 'string' || !PEER_ID.test(q.peerId)) throw bad('peerId');
    if (typeof q.address !== 'string' || isIP(q.address) === 0) throw bad('address');
    if (typeof q.port !== 'number' || !Number.isInteger(q.port) || q.port < 1 || q.port > 65535) throw bad('port');
    return { peerId: q.peerId, address: q.address, port: q.port, complete: q.complete === true, ...(q.seeder === true ? { seeder: true as const } : {}) };
  });
  return { peers, intervalMs: r.interval * 1000 };
}
