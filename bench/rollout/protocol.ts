/** IPC messages between the rollout harness (host-pool.ts) and its host processes (host-process.ts). */

export interface AgentSpec {
  /** Node index 0..N-1. */
  readonly index: number;
  readonly dataDir: string;
  /** Upload and download limit (bytes/s). */
  readonly rate: number;
  /** Origin URL this agent uses (the counting proxy at the agent's own loopback address). */
  readonly origin: string;
}

export type ToHost =
  | { type: 'init'; agents: AgentSpec[]; tracker: string | undefined; agentArgs: string[] }
  | { type: 'start'; startAt: number; repository: string; tag: string; offsets: Record<number, number>; deadlineAt: number }
  | { type: 'churn'; indexes: number[] }
  | { type: 'collect' }
  | { type: 'shutdown' };

export interface NodeMetrics {
  readonly index: number;
  /** layerswarm_swarm_piece_bytes_total by direction and peer kind. */
  readonly pieceDownFromComplete: number;
  readonly pieceDownFromAgents: number;
  readonly pieceUp: number;
  /** layerswarm_swarm_bytes_total by source (large blobs committed to the store). */
  readonly swarmBytesPeers: number;
  readonly swarmBytesOrigin: number;
  readonly fallbacks: Record<string, number>;
  readonly badPieces: number;
  readonly peersBanned: number;
  /** Bytes charged to the agent's download / upload bucket (--download-limit / --upload-limit): all piece-protocol
   * frames received / sent, duplicates included, plus (download) origin blob bodies. */
  readonly chargedDown: number;
  readonly chargedUp: number;
  /** Warnings/errors the agent logged (count) and the last few messages. */
  readonly warnings: number;
  readonly lastWarnings: string[];
}

export type FromHost =
  | { type: 'ready'; agents: Array<{ index: number; url: string; peerPrefix: string | undefined }>; startSeconds: number }
  | { type: 'done'; index: number; seconds: number; attempts: number }
  | { type: 'failed'; index: number; error: string; attempts: number }
  | { type: 'progress'; bytes: number }
  | { type: 'churned'; index: number; seconds: number }
  | { type: 'collected'; nodes: NodeMetrics[]; maxRssBytes: number; cpuSeconds: number; cpuSecondsSinceStart: number }
  | { type: 'closed' }
  | { type: 'error'; error: string };
