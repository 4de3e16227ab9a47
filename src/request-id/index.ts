export { REQUEST_ID_HEADER, REQUEST_ID_PATTERN, requestId, requestIdFor, requestIdOf } from './request-id';
