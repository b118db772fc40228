'use strict';
/**
 * wxrest-client: the mini-program side of a wxrest backend. Logs in with wx.login(), keeps the
 * token pair in storage, sends `Authorization: JWT <token>`, refreshes once for every request
 * in flight, logs in again when the session ended, waits as told on 429/503, and pays without
 * trusting wx.requestPayment's success callback. No runtime dependencies; `wx` is the
 * platform object (`wx`, `uni`, `Taro`, or a stand-in in tests).
 */

/** The server routes: the crate's token routes and the example mall's orders. */
const DEFAULT_PATHS = Object.freeze({
  login: '/auth/wx-login/',
  refresh: '/auth/token/refresh/',
  logout: '/auth/logout/',
  order: '/mall/orders/{id}/',
  pay: '/mall/orders/{id}/pay/',
});

/** Order statuses that mean the money arrived (later steps of a paid order included). */
const PAID_STATUSES = Object.freeze(['paid', 'shipped', 'completed', 'refunding', 'refunded']);

/** Pauses between reads of an order after wx.requestPayment, in milliseconds (~17 s in all). */
const DEFAULT_POLL_INTERVALS = Object.freeze([300, 600, 1000, 1500, 2000, 3000, 4000, 5000]);

const RELOGIN_CODES = ['not_authenticated', 'token_revoked', 'token_invalid'];
const FRESH_CODE_CODES = ['wechat_code_used', 'wechat_code_invalid'];

/** An error a caller can act on: `code` is the server's (or the client's own), as `detail`. */
class WxrestError extends Error {
  constructor(code, detail, extra) {
    super(detail ? `${code}: ${detail}` : code);
    this.name = 'WxrestError';
    this.code = code;
    this.detail = detail;
    Object.assign(this, extra);
  }
}

function errorFrom(response, fallbackCode) {
  const data = response && response.data;
  const code = (data && typeof data === 'object' && data.code) || fallbackCode;
  const detail = data && typeof data === 'object' ? data.detail : undefined;
  return new WxrestError(code, detail, { statusCode: response.statusCode, data });
}

function codeOf(response) {
  const data = response.data;
  return data && typeof data === 'object' && typeof data.code === 'string' ? data.code : undefined;
}

function headerValue(header, name) {
  if (!header) return undefined;
  const wanted = name.toLowerCase();
  for (const key of Object.keys(header)) {
    if (key.toLowerCase() === wanted) return header[key];
  }
  return undefined;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Calls a callback-style platform API (`success`/`fail`) as a promise. */
function call(fn, options) {
  return new Promise((resolve, reject) => {
    fn(Object.assign({}, options, { success: resolve, fail: reject }));
  });
}

function isCancel(err) {
  return /cancel/i.test((err && err.errMsg) || '');
}

function joinUrl(base, path) {
  if (/^https?:\/\//.test(path)) return path;
  return base.replace(/\/+$/, '') + '/' + path.replace(/^\/+/, '');
}

/**
 * Creates a client.
 * @param {object} options
 * @param {string} options.baseUrl the backend, e.g. `https://api.example.com`
 * @param {object} options.wx `wx`, `uni`, `Taro`, or a stand-in with login, request,
 *   requestPayment, getStorageSync, setStorageSync, removeStorageSync
 * @param {string} [options.storageKey] where the token pair is kept (`wxrest.session`)
 * @param {object} [options.paths] overrides of the server routes (see DEFAULT_PATHS)
 * @param {number} [options.maxRetryAfter] the longest `Retry-After` waited, seconds (10)
 * @param {number} [options.retries] how many times a 429/503 is retried (2)
 * @param {number[]} [options.pollIntervals] pauses between order reads after paying, ms
 */
function createClient(options) {
  if (!options || typeof options.baseUrl !== 'string' || !options.wx) {
    throw new TypeError('createClient({ baseUrl, wx }): baseUrl (a string) and wx are required');
  }
  const wx = options.wx;
  const baseUrl = options.baseUrl;
  const storageKey = options.storageKey || 'wxrest.session';
  const paths = Object.assign({}, DEFAULT_PATHS, options.paths);
  const maxRetryAfter = options.maxRetryAfter == null ? 10 : options.maxRetryAfter;
  const retries = options.retries == null ? 2 : options.retries;
  const pollIntervals = options.pollIntervals || DEFAULT_POLL_INTERVALS;

  // The session, read back from storage: it survives a restart of the mini-program.
  let session = null;
  try {
    const stored = wx.getStorageSync(storageKey);
    if (stored && typeof stored === 'object' && typeof stored.token === 'string') session = stored;
  } catch (_) {
    session = null;
  }
  let loggingIn = null;
  let refreshing = null;

  function save(next) {
    session = next;
    if (next) wx.setStorageSync(storageKey, next);
    else wx.removeStorageSync(storageKey);
  }

  function pathOf(name, id) {
    return paths[name].replace('{id}', encodeURIComponent(String(id)));
  }

  /** One HTTP exchange, no policy: `{ statusCode, data, header }`. */
  async function send(req, token) {
    const header = Object.assign({}, req.header);
    if (token) header.Authorization = `JWT ${token}`;
    try {
      const res = await call(wx.request, {
        url: joinUrl(baseUrl, req.url),
        method: req.method || 'GET',
        data: req.data,
        header,
      });
      return { statusCode: res.statusCode, data: res.data, header: res.header || {} };
    } catch (err) {
      throw new WxrestError('network_error', (err && err.errMsg) || String(err), { cause: err });
    }
  }

  async function loginOnce(extra) {
    let freshCodeTaken = false;
    for (;;) {
      const { code } = await call(wx.login, {});
      const res = await send({
        url: paths.login,
        method: 'POST',
        data: Object.assign({}, extra, { code }),
      });
      if (res.statusCode === 200 && res.data && res.data.token) {
        save({ token: res.data.token, refresh: res.data.refresh || null, user: res.data.user || null });
        return res.data.user || null;
      }
      // A code WeChat answers as used or invalid: one fresh code, then give up.
      if (!freshCodeTaken && FRESH_CODE_CODES.includes(codeOf(res))) {
        freshCodeTaken = true;
        continue;
      }
      throw errorFrom(res, 'login_failed');
    }
  }

  /** Logs in; concurrent calls share one login. */
  function login(extra) {
    if (!loggingIn) {
      loggingIn = loginOnce(extra).finally(() => {
        loggingIn = null;
      });
    }
    return loggingIn;
  }

  /** Logs in again for a request sent with `used`, unless someone already did. */
  async function relogin(used) {
    if (session && session.token !== used) return;
    save(null);
    await login();
  }

  async function refreshOnce() {
    const refresh = session && session.refresh;
    if (!refresh) {
      await relogin(session && session.token);
      return;
    }
    const res = await send({ url: paths.refresh, method: 'POST', data: { refresh } });
    if (res.statusCode === 200 && res.data && res.data.token) {
      save(Object.assign({}, session, { token: res.data.token, refresh: res.data.refresh || refresh }));
      return;
    }
    if (res.statusCode === 429 || res.statusCode >= 500) throw errorFrom(res, 'refresh_failed');
    // The session ended (revoked, reused, expired): log in again.
    save(null);
    await login();
  }

  /**
   * Refreshes for a request sent with `used`: once for every request in flight. A request
   * whose token was already replaced retries with the new one; a refresh token is never
   * presented twice (the server would end the session).
   */
  async function refreshFor(used) {
    if (refreshing) return refreshing;
    if (session && session.token !== used) return undefined;
    refreshing = refreshOnce().finally(() => {
      refreshing = null;
    });
    return refreshing;
  }

  async function request(req) {
    if (!req || typeof req.url !== 'string') throw new TypeError('request({ url }): url is required');
    if (loggingIn) await loggingIn.catch(() => undefined);
    if (refreshing) await refreshing.catch(() => undefined);
    if (!session) await login();
    let refreshed = false;
    let relogged = false;
    let waited = 0;
    for (;;) {
      const used = session && session.token;
      const res = await send(req, used);
      const code = codeOf(res);
      if (res.statusCode === 401 && code === 'token_expired' && !refreshed && !relogged) {
        refreshed = true;
        await refreshFor(used);
        continue;
      }
      if (res.statusCode === 401 && RELOGIN_CODES.includes(code) && !relogged) {
        relogged = true;
        await relogin(used);
        continue;
      }
      if ((res.statusCode === 429 || res.statusCode === 503) && waited < retries) {
        const seconds = Number(headerValue(res.header, 'Retry-After'));
        if (Number.isFinite(seconds) && seconds >= 0 && seconds <= maxRetryAfter) {
          waited += 1;
          await sleep(seconds * 1000);
          continue;
        }
      }
      return res;
    }
  }

  async function readOrder(orderId) {
    const res = await request({ url: pathOf('order', orderId) });
    if (res.statusCode !== 200) throw errorFrom(res, 'order_unreadable');
    return res.data;
  }

  /**
   * Pays an order: the server's wx.requestPayment parameters, wx.requestPayment, then the
   * order read until the server says it is paid. Resolves `{ status: 'paid' | 'cancelled',
   * order }`; rejects with `payment_unconfirmed` when the order is still unpaid at the end.
   */
  async function pay(orderId) {
    const res = await request({ url: pathOf('pay', orderId), method: 'POST', data: {} });
    if (res.statusCode !== 200) throw errorFrom(res, 'pay_refused');
    let failure = null;
    try {
      await call(wx.requestPayment, res.data);
    } catch (err) {
      if (isCancel(err)) return { status: 'cancelled', order: await readOrder(orderId) };
      failure = err;
    }
    // success proves nothing (and a fail may still have paid): the server decides.
    let order = await readOrder(orderId);
    for (const pause of pollIntervals) {
      if (order.status !== 'pending') break;
      await sleep(pause);
      order = await readOrder(orderId);
    }
    if (PAID_STATUSES.includes(order.status)) return { status: 'paid', order };
    throw new WxrestError(
      'payment_unconfirmed',
      failure
        ? `wx.requestPayment failed (${failure.errMsg || failure}) and the order is ${order.status}`
        : `the order is still ${order.status}: the server has not seen the payment`,
      { order, cause: failure || undefined },
    );
  }

  /** Ends the session on the server (best effort) and clears storage. */
  async function logout() {
    const ending = session;
    save(null);
    if (!ending) return;
    try {
      await send(
        { url: paths.logout, method: 'POST', data: ending.refresh ? { refresh: ending.refresh } : {} },
        ending.token,
      );
    } catch (_) {
      // Offline: the tokens are gone from this device; the server's expire on their own.
    }
  }

  return {
    login,
    request,
    pay,
    logout,
    /** The stored session `{ token, refresh, user }`, or null. */
    get session() {
      return session ? Object.assign({}, session) : null;
    },
  };
}

module.exports = { createClient, WxrestError, DEFAULT_PATHS, PAID_STATUSES, DEFAULT_POLL_INTERVALS };
