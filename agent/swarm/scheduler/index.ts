/** The per-blob swarm scheduler: a pure state machine (events in, commands out). See scheduler.ts DEV DOCS. */
export { Scheduler, type SchedulerInit, type SchedulerStats } from './scheduler.ts';
export { DEFAULT_SCHEDULER_CONFIG, schedulerConfig, type SchedulerConfig } from './config.ts';
export { Bitfield } from './bitfield.ts';
export { rarestFirst, sequential, Availability, type PiecePickerPolicy, type PickInput } from './piece-picker.ts';
export { seededRng, ManualClock } from './types.ts';
export type {
  AnnounceReason, BlobShape, Clock, CloseReason, DiscoveredPeer, PeerAddress, PeerId, Rng, SchedulerCommand, SchedulerCommandType, SchedulerEvent,
  SchedulerEventType,
} from './types.ts';
