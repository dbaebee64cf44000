/** JSON schemas of the tracker API (fastify validates every request against them before a handler runs). */

export const PEER_ID_PATTERN = '^[0-9a-f]{40}$';
export const ZONE_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$';
export const SEEDER_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$';
export const REGISTRY_PATTERN = '^[a-zA-Z0-9.-]{1,253}(:[0-9]{1,5})?$';

/** POST /v1/announce: one declaration for the server (validated by announceSchema) and the client. */
export interface AnnounceBody {
  digest: string;
  /** 40 lowercase hex characters, stable for the process. */
  peerId: string;
  /** IP address other peers dial. */
  address: string;
  port: number;
  complete: boolean;
  /** Pieces held. */
  pieces: number;
  zone?: string;
  /** Set by seeders. */
  seeder?: boolean;
  /** Bytes of this blob uploaded to peers since the peer's torrent started (the tracker derives rates). */
  uploaded?: number;
  /** Bytes of this blob downloaded from peers since the peer's torrent started. */
  downloaded?: number;
  /** The peer leaves this swarm (torrent closed, agent shutting down): it is removed at once and gets no peers. */
  stopped?: boolean;
}

export const announceSchema = {
  body: {
    type: 'object',
    additionalProperties: false,
    required: ['digest', 'peerId', 'address', 'port', 'complete', 'pieces'],
    properties: {
      digest: { type: 'string', maxLength: 200 },
      peerId: { type: 'string', pattern: PEER_ID_PATTERN },
      address: { type: 'string', minLength: 2, maxLength: 45 },
      port: { type: 'integer', minimum: 1, maximum: 65535 },
      complete: { type: 'boolean' },
      pieces: { type: 'integer', minimum: 0, maximum: 65536 },
      zone: { type: 'string', pattern: ZONE_PATTERN },
      seeder: { type: 'boolean' },
      uploaded: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
      downloaded: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
      stopped: { type: 'boolean' },
    },
  },
} as const;

export interface SeederBody {
  id: string;
  url: string;
}

export const seederSchema = {
  body: {
    type: 'object',
    additionalProperties: false,
    required: ['id', 'url'],
    properties: {
      id: { type: 'string', pattern: SEEDER_ID_PATTERN },
      url: { type: 'string', minLength: 8, maxLength: 2048 },
    },
  },
} as const;

export const putMetainfoSchema = {
  body: {
    type: 'object',
    additionalProperties: false,
    required: ['digest', 'size', 'pieceLength', 'pieceHashes'],
    properties: {
      digest: { type: 'string', maxLength: 200 },
      size: { type: 'integer', minimum: 0 },
      pieceLength: { type: 'integer', minimum: 1 },
      pieceHashes: { type: 'array', maxItems: 65536, items: { type: 'string', pattern: '^[a-f0-9]{64}$' } },
    },
  },
} as const;

export interface MetainfoQuery {
  repository?: string;
  registry?: string;
}

export const getMetainfoSchema = {
  params: {
    type: 'object',
    required: ['digest'],
    properties: { digest: { type: 'string', maxLength: 200 } },
  },
  querystring: {
    type: 'object',
    properties: {
      repository: { type: 'string', minLength: 1, maxLength: 255 },
      registry: { type: 'string', pattern: REGISTRY_PATTERN },
    },
  },
} as const;

export const swarmsSchema = {
  querystring: {
    type: 'object',
    properties: { limit: { type: 'string', pattern: '^[0-9]{1,5}$' } },
  },
} as const;

export const swarmDetailSchema = {
  params: {
    type: 'object',
    required: ['digest'],
    properties: { digest: { type: 'string', maxLength: 200 } },
  },
} as const;

export const SWARM_EVENT_KINDS = ['fallback', 'bad_piece', 'peer_banned'] as const;
export type SwarmEventKind = (typeof SWARM_EVENT_KINDS)[number];

/** POST /v1/events: what an agent reports since its last report (swarm-health dashboard and `layerswarm status`). */
export interface EventsBody {
  /** The reporting agent's peer id. */
  peerId: string;
  zone?: string;
  events?: Array<{ kind: SwarmEventKind; digest?: string; reason?: string; at?: number }>;
  /** Bytes of swarm-eligible blobs committed since the last report, by where they came from. */
  bytes?: { peers: number; origin: number };
}

export const MAX_EVENTS_PER_POST = 100;

export const postEventsSchema = {
  body: {
    type: 'object',
    additionalProperties: false,
    required: ['peerId'],
    properties: {
      peerId: { type: 'string', pattern: PEER_ID_PATTERN },
      zone: { type: 'string', pattern: ZONE_PATTERN },
      events: {
        type: 'array',
        maxItems: MAX_EVENTS_PER_POST,
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['kind'],
          properties: {
            kind: { type: 'string', enum: SWARM_EVENT_KINDS },
            digest: { type: 'string', pattern: '^sha256:[a-f0-9]{64}$' },
            reason: { type: 'string', pattern: '^[a-z_]{1,40}$' },
            at: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
          },
        },
      },
      bytes: {
        type: 'object',
        additionalProperties: false,
        required: ['peers', 'origin'],
        properties: {
          peers: { type: 'integer', minimum: 0, maximum: 2 ** 50 },
          origin: { type: 'integer', minimum: 0, maximum: 2 ** 50 },
        },
      },
    },
  },
} as const;

export const getEventsSchema = {
  querystring: {
    type: 'object',
    properties: {
      since: { type: 'string', pattern: '^[0-9]{1,15}$' },
      limit: { type: 'string', pattern: '^[0-9]{1,4}$' },
    },
  },
} as const;
