export { deadlineSignal, requestDeadline } from './request-deadline';
export type { RequestDeadlineOptions } from './request-deadline';
