export { createShutdownGate, SHUTDOWN_GATE_DEFAULTS } from './shutdown-gate';
export type { GateState, ShutdownGate, ShutdownGateOptions } from './shutdown-gate';
export { createLifecycle, LIFECYCLE_DEFAULTS } from './lifecycle';
export type { CleanupPhase, Lifecycle, LifecycleLogger, LifecycleOptions, ShutdownReport } from './lifecycle';
