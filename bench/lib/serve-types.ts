/** bench:serve's record types, sides and targets (shared by the runner and the report). */
import type { RssPoint } from './procfs.ts';

export const TARGET_THROUGHPUT_RATIO = 1.0;
export const TARGET_COLD_PULL_RATIO = 1.15;
/** Idle time before a cold GET: RSS samples in this window are the baseline. */
export const IDLE_MS = 1000;
/** Sampling continues this long after the GET finished. */
export const TAIL_MS = 300;

export type GetSide = 'agent' | 'registry' | 'restarted' | 'reference';
export const GET_SIDES: readonly GetSide[] = ['agent', 'registry', 'restarted', 'reference'];
export const SIDE_NAME: Record<GetSide, string> = {
  agent: 'agent',
  registry: 'registry',
  restarted: 'agent (restarted)',
  reference: 'node:http+fs (ref)',
};
export type PullSide = 'agent' | 'direct';

export interface GetRun {
  rep: number;
  side: GetSide;
  seconds: number;
  ttfbSeconds: number;
  mbps: number;
  clientCpuSeconds: number;
  /** CPU seconds the server process used during this GET (all threads). */
  serverCpuSeconds: number | null;
}

export interface AgentFetch {
  digest: string;
  bytes: number;
  /** Download + sha256 + fsync + rename, as the agent logs it ('blob fetched and verified'). */
  seconds: number;
  /** When it ended, ms since the epoch (log time). */
  endMs: number;
}

export interface PullRun {
  rep: number;
  side: PullSide;
  seconds: number;
  clientCpuSeconds: number;
  /** CPU seconds of the agent (agent side) or the registry (both sides) during the pull. */
  agentCpuSeconds: number | null;
  registryCpuSeconds: number | null;
  /** Agent side: the blob fetches the pull caused. */
  fetches?: AgentFetch[];
  /** Agent side: wall time during which at least one blob fetch was in progress (union of the fetch intervals). No
   * byte of a blob is served while it is being fetched, so with a sequential client this is all added latency. */
  fetchWallSeconds?: number;
  /** Agent side: the longest blob request (fetch wait + streaming), from the agent's request log. */
  slowestBlobRequestSeconds?: number;
  /** Agent side: whether skopeo's blob GETs overlapped in time (false: one layer after the other). */
  blobRequestsOverlapped?: boolean;
  agentPeakRssKiB?: number;
}

export interface ColdFetch {
  label: string;
  blobBytes: number;
  digest: string;
  ttfbSeconds: number;
  seconds: number;
  mbps: number;
  agentCpuSeconds: number | null;
  agentIdleRssKiB: number;
  agentPeakRssKiB: number;
  agentGrowthKiB: number;
  registryIdleRssKiB: number | null;
  registryPeakRssKiB: number | null;
  /** The GET started at this time on the traces' axis (ms since sampling started). */
  getStartMs: number;
  getEndMs: number;
  trace: { agent: RssPoint[]; registry: RssPoint[] };
}

export interface Blob {
  digest: string;
  bytes: number;
  url: (base: string) => string;
}

