// The ESM entry (uni-app, Taro, bundlers): the same implementation as the CommonJS one.
import client from '../lib/client.js';

export const { createClient, WxrestError, DEFAULT_PATHS, PAID_STATUSES, DEFAULT_POLL_INTERVALS } =
  client;
export default client;
