'use strict';
// A `wx` stand-in: login hands out fresh codes the mall's fake WeChat accepts (or scripted
// ones), request uses fetch and records every exchange, storage is a Map (pass the same Map
// to simulate a restart), requestPayment pays through the mall's fake WeChat Pay.
let serial = 0;

function fakeWx({ payBase, storage = new Map(), payment = 'pay' } = {}) {
  const wx = {
    storage,
    /** Codes to hand out before fresh ones (e.g. a `used-…` code). */
    scriptedCodes: [],
    /** Every wx.request: { url, method, status, code, authorization }. */
    exchanges: [],
    loginCalls: 0,
    paymentCalls: 0,
    /** What requestPayment does: 'pay', 'cancel', or 'success-unpaid'. */
    payment,

    login({ success }) {
      wx.loginCalls += 1;
      serial += 1;
      const code = wx.scriptedCodes.shift() || `code-${process.pid}-${serial}-${Math.random().toString(36).slice(2)}`;
      setImmediate(() => success({ code, errMsg: 'login:ok' }));
    },

    request({ url, method = 'GET', data, header = {}, success, fail }) {
      const init = { method, headers: Object.assign({}, header) };
      // As wx.request: a GET's data is the query string.
      if (data && typeof data === 'object' && method === 'GET') {
        const target = new URL(url);
        for (const [k, v] of Object.entries(data)) target.searchParams.set(k, String(v));
        url = target.toString();
      } else if (data !== undefined && method !== 'GET') {
        init.headers['Content-Type'] = 'application/json';
        init.body = JSON.stringify(data);
      }
      fetch(url, init)
        .then(async (res) => {
          const text = await res.text();
          let body;
          try { body = JSON.parse(text); } catch (_) { body = text; }
          const headers = {};
          res.headers.forEach((v, k) => { headers[k] = v; });
          wx.exchanges.push({
            url: new URL(url).pathname,
            method,
            status: res.status,
            code: body && body.code,
            authorization: header.Authorization,
          });
          success({ statusCode: res.status, data: body, header: headers, errMsg: 'request:ok' });
        })
        .catch((err) => fail({ errMsg: `request:fail ${err.message}` }));
    },

    requestPayment(options) {
      wx.paymentCalls += 1;
      const { success, fail } = options;
      if (wx.payment === 'cancel') return setImmediate(() => fail({ errMsg: 'requestPayment:fail cancel' }));
      if (wx.payment === 'success-unpaid') return setImmediate(() => success({ errMsg: 'requestPayment:ok' }));
      const params = {};
      for (const key of ['appId', 'timeStamp', 'nonceStr', 'package', 'signType', 'paySign']) params[key] = options[key];
      fetch(`${payBase}/fake/request-payment`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(params),
      }).then(
        (res) => (res.ok ? success({ errMsg: 'requestPayment:ok' }) : fail({ errMsg: `requestPayment:fail ${res.status}` })),
        (err) => fail({ errMsg: `requestPayment:fail ${err.message}` }),
      );
    },

    getStorageSync: (key) => (storage.has(key) ? storage.get(key) : ''),
    setStorageSync: (key, value) => { storage.set(key, value); },
    removeStorageSync: (key) => { storage.delete(key); },

    /** The exchanges with `path` (and status, when given). */
    calls(path, status) {
      return wx.exchanges.filter((e) => e.url === path && (status === undefined || e.status === status));
    },
  };
  return wx;
}

module.exports = { fakeWx };
