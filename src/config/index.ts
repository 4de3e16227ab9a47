export { CONFIG_DEFAULTS } from './defaults';
export { CONFIG_VARIABLES, loadConfig } from './config';
export type { Config, LogLevel, Mode, RedisAccess, TrustProxy } from './config';
export { certificateRefusal, redisClientAccess } from './redis-access';
export { loadTracingConfig, TRACING_CONFIG_VARIABLES, tracingEnabled } from './tracing-config';
export type { OtlpProtocol, TraceSampler, TracingConfig } from './tracing-config';
export { ConfigError } from './variables';
export { defaultPolicies, loadPolicyFile } from './policies-file';
