/** The WebSocket API's `$connect` route (see route-handler.ts). */
export { connectHandler as handler } from './route-handler.ts';
