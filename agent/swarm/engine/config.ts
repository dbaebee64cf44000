/**
 * SwarmEngineConfig: the I/O shell's knobs, with documented defaults. Policy knobs (connections per blob, pipeline,
 * timeouts, upload slots, announce intervals) stay in the scheduler's config, reused as `scheduler`.
 */
import { LayerswarmError } from '../../../shared/errors.ts';
import { schedulerConfig, type SchedulerConfig } from '../scheduler/config.ts';

export interface SwarmEngineConfig {
  /** Torrents (downloads + seeds) at once; more are refused with TOOMANYREQUESTS. @default 256 */
  readonly maxTorrents: number;
  /** Open connections over all torrents (inbound + outbound); inbound beyond it gets Error(OVERLOADED). @default 512 */
  readonly maxConnections: number;
  /** Scheduler tick period: the only timer of a torrent. @default 250 */
  readonly tickMs: number;
  /** Deadline for a TCP (transport) connect. @default 5_000 */
  readonly connectTimeoutMs: number;
  /** Deadline for the remote's Handshake after the connection is up. @default 5_000 */
  readonly handshakeTimeoutMs: number;
  /** Deadline for one announce to the tracker. @default 10_000 */
  readonly announceTimeoutMs: number;
  /** Deadline for writing one piece to a peer (read + send); the connection is closed when it passes. @default 30_000 */
  readonly uploadTimeoutMs: number;
  /** Deadline for the final whole-blob sha256 check and other file work per step. @default 120_000 */
  readonly fileTimeoutMs: number;
  readonly scheduler: SchedulerConfig;
}

export const DEFAULT_ENGINE_CONFIG: SwarmEngineConfig = {
  maxTorrents: 256,
  maxConnections: 512,
  tickMs: 250,
  connectTimeoutMs: 5_000,
  handshakeTimeoutMs: 5_000,
  announceTimeoutMs: 10_000,
  uploadTimeoutMs: 30_000,
  fileTimeoutMs: 120_000,
  scheduler: schedulerConfig(),
};

export type SwarmEngineConfigInput = Partial<Omit<SwarmEngineConfig, 'scheduler'>> & { readonly scheduler?: Partial<SchedulerConfig> };

/** Defaults overlaid with `overrides`, validated. Throws CONFIG_INVALID naming the first bad field. */
export function swarmEngineConfig(overrides: SwarmEngineConfigInput = {}): SwarmEngineConfig {
  const { scheduler, ...rest } = overrides;
  const config: SwarmEngineConfig = { ...DEFAULT_ENGINE_CONFIG, ...rest, scheduler: schedulerConfig(scheduler) };
  for (const field of ['maxTorrents', 'maxConnections', 'tickMs', 'connectTimeoutMs', 'handshakeTimeoutMs', 'announceTimeoutMs', 'uploadTimeoutMs', 'fileTimeoutMs'] as const) {
    const value = config[field];
    if (!Number.isSafeInteger(value) || value < 1) throw new LayerswarmError('CONFIG_INVALID', `swarm engine ${field} must be an integer ≥ 1, got ${String(value)}`);
  }
  return config;
}
