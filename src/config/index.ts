export { CONFIG_DEFAULTS } from './defaults';
export { CONFIG_VARIABLES, ConfigError, loadConfig } from './load-config';
export type { Config, LogLevel, Mode, OtlpProtocol, TraceSampler, TrustProxy } from './load-config';
