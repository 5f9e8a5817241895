/** The WebSocket API's `$disconnect` route (see route-handler.ts). */
export { disconnectHandler as handler } from './route-handler.ts';
