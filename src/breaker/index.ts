export {
  CIRCUIT_PRESETS,
  createCircuitBreaker,
  DependencyUnavailableError,
  type CircuitBreaker,
  type CircuitBreakerOptions,
  type CircuitNumbers,
  type CircuitObserver,
  type CircuitPreset,
  type CircuitState,
} from './breaker';
