export { createLoadShedder, LOAD_SHEDDER_DEFAULTS } from './load-shedder';
export type { LoadShedder, LoadShedderOptions, LoadState, ShedReason } from './load-shedder';
