/** The swarm engine: runs one Scheduler per blob over real connections. See engine.ts DEV DOCS. */
export { SwarmEngine, type DownloadResult, type SeedSource, type SwarmEngineOptions } from './engine.ts';
export { DEFAULT_ENGINE_CONFIG, swarmEngineConfig, type SwarmEngineConfig, type SwarmEngineConfigInput } from './config.ts';
export { formatAddress, parseAddress, trackerAnnounce, type Announce, type AnnounceInput, type TrackerAnnounceOptions } from './announce.ts';
export { newPeerId, peerIdFromBytes, peerIdToBytes } from './peer-id.ts';
export { PieceFile } from './piece-file.ts';
export { blobStoreSource, completeFileSource, type PieceSource } from './piece-source.ts';
export type { PeerKind, PeerRole, PeerTraffic, SwarmEngineEvents, TorrentStats } from './stats.ts';
