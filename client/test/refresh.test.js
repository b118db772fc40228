'use strict';
// Expired access tokens: one refresh for every request in flight, never a reused refresh token.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { createClient } = require('..');
const { startMall } = require('../support/mall');
const { fakeWx } = require('../support/wx');

// Three-second access tokens (development only), so expiry is reached in the test.
const LIFETIME_SECONDS = 3;
let mall;
before(async () => { mall = await startMall({ JWT_ACCESS_LIFETIME: String(LIFETIME_SECONDS) }); });
after(async () => { if (mall) await mall.stop(); });

/** Waits until the stored access token is past its `exp` (whole seconds, no leeway). */
async function untilExpired(token) {
  const { exp } = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
  const wait = exp * 1000 + 1100 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}

test('20 parallel requests with an expired access token make exactly one refresh call, and the session lives', async () => {
  const wx = fakeWx();
  const client = createClient({ baseUrl: mall.base, wx });
  await client.login();
  const { token: expired, refresh: first } = client.session;
  await untilExpired(expired);
  const answers = await Promise.all(
    Array.from({ length: 20 }, () => client.request({ url: '/mall/goods/' })),
  );
  assert.deepEqual(answers.map((r) => r.statusCode), Array(20).fill(200));
  assert.equal(wx.calls('/auth/token/refresh/').length, 1, 'exactly one refresh call');
  assert.equal(wx.calls('/auth/token/refresh/', 200).length, 1);
  assert.ok(wx.calls('/mall/goods/', 401).every((e) => e.code === 'token_expired'));
  assert.ok(wx.calls('/mall/goods/', 401).length >= 1);
  assert.equal(wx.loginCalls, 1, 'no re-login: the session was not revoked');
  assert.notEqual(client.session.refresh, first, 'the refresh token rotated');
  // The session is alive on the server: the rotated refresh token still works once.
  const res = await fetch(`${mall.base}/auth/token/refresh/`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ refresh: client.session.refresh }),
  });
  assert.equal(res.status, 200, 'a revoked session would answer 401 token_revoked');
});

test('a refused refresh (the session ended) logs in again once', async () => {
  const wx = fakeWx();
  const client = createClient({ baseUrl: mall.base, wx });
  await client.login();
  const { token, refresh } = client.session;
  // The refresh token is used elsewhere first: reuse detection will end the session.
  const stolen = await fetch(`${mall.base}/auth/token/refresh/`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ refresh }),
  });
  assert.equal(stolen.status, 200);
  await untilExpired(token);
  const answers = await Promise.all([1, 2, 3].map(() => client.request({ url: '/mall/goods/' })));
  assert.deepEqual(answers.map((r) => r.statusCode), [200, 200, 200]);
  assert.equal(wx.calls('/auth/token/refresh/').length, 1);
  assert.equal(wx.calls('/auth/token/refresh/', 200).length, 0);
  assert.equal(wx.loginCalls, 2, 'the first login and one re-login');
});
