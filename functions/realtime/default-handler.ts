/** The WebSocket API's `$default` route (see route-handler.ts). */
export { defaultHandler as handler } from './route-handler.ts';
