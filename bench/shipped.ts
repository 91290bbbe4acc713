/** The V8 flags `npm start` and docs/shelf.service run the server with (a 16 MB young generation). */
export const SHIPPED_NODE_OPTIONS = '--max-semi-space-size=8';
