'use strict';
// Login, the Django app's flow, restarts, revoked sessions, used codes and logout, against the
// real mall in development mode.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { createClient } = require('..');
const { startMall } = require('../support/mall');
const { fakeWx } = require('../support/wx');

let mall;
before(async () => { mall = await startMall(); });
after(async () => { if (mall) await mall.stop(); });

test("the Django app's flow: wx.login(), POST /auth/wx-login/, then GET /mall/goods/ with JWT", async () => {
  const wx = fakeWx();
  const client = createClient({ baseUrl: mall.base, wx });
  const user = await client.login();
  assert.ok(user && user.id, 'the login answers the user');
  const res = await client.request({ url: '/mall/goods/' });
  assert.equal(res.statusCode, 200);
  assert.ok(Array.isArray(res.data.results) && res.data.results.length > 0);
  assert.equal(typeof res.data.count, 'number');
  const goods = wx.calls('/mall/goods/')[0];
  assert.equal(goods.authorization, `JWT ${client.session.token}`);
  assert.equal(wx.loginCalls, 1);
  assert.equal(wx.calls('/auth/wx-login/', 200).length, 1);
});

test('a request without a stored token logs in first, once for concurrent requests', async () => {
  const wx = fakeWx();
  const client = createClient({ baseUrl: mall.base, wx });
  const answers = await Promise.all([1, 2, 3, 4, 5].map(() => client.request({ url: '/mall/goods/' })));
  assert.deepEqual(answers.map((r) => r.statusCode), [200, 200, 200, 200, 200]);
  assert.equal(wx.loginCalls, 1);
  assert.equal(wx.calls('/auth/wx-login/').length, 1);
});

test('the tokens survive a restart of the mini-program', async () => {
  const storage = new Map();
  const first = createClient({ baseUrl: mall.base, wx: fakeWx({ storage }) });
  await first.login();
  const wx = fakeWx({ storage });
  const restarted = createClient({ baseUrl: mall.base, wx });
  assert.equal(restarted.session.token, first.session.token);
  const res = await restarted.request({ url: '/mall/goods/' });
  assert.equal(res.statusCode, 200);
  assert.equal(wx.loginCalls, 0, 'no new login after the restart');
});

test('a revoked session logs in again once and retries', async () => {
  const wx = fakeWx();
  const client = createClient({ baseUrl: mall.base, wx });
  await client.login();
  const { token, refresh } = client.session;
  // Another device (or the server) ends the session.
  const out = await fetch(`${mall.base}/auth/logout/`, {
    method: 'POST',
    headers: { Authorization: `JWT ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ refresh }),
  });
  assert.equal(out.status, 200);
  const answers = await Promise.all([1, 2, 3].map(() => client.request({ url: '/mall/goods/' })));
  assert.deepEqual(answers.map((r) => r.statusCode), [200, 200, 200]);
  assert.ok(wx.calls('/mall/goods/', 401).every((e) => e.code === 'token_revoked'));
  assert.ok(wx.calls('/mall/goods/', 401).length >= 1);
  assert.equal(wx.loginCalls, 2, 'the first login and one re-login');
  assert.equal(wx.calls('/auth/wx-login/').length, 2);
  assert.notEqual(client.session.token, token);
});

test('an invalid token logs in again once', async () => {
  const wx = fakeWx();
  const client = createClient({ baseUrl: mall.base, wx });
  await client.login();
  const stored = wx.storage.get('wxrest.session');
  wx.storage.set('wxrest.session', Object.assign({}, stored, { token: 'not.a.token' }));
  const again = createClient({ baseUrl: mall.base, wx });
  const res = await again.request({ url: '/mall/goods/' });
  assert.equal(res.statusCode, 200);
  assert.equal(wx.calls('/mall/goods/', 401).length, 1);
  assert.equal(wx.loginCalls, 2);
});

test('a used login code takes one fresh code', async () => {
  const wx = fakeWx();
  wx.scriptedCodes.push(`used-${process.pid}-1`);
  const client = createClient({ baseUrl: mall.base, wx });
  await client.login();
  assert.equal(wx.loginCalls, 2);
  const logins = wx.calls('/auth/wx-login/');
  assert.deepEqual(logins.map((e) => [e.status, e.code]), [[400, 'wechat_code_used'], [200, undefined]]);
  assert.ok(client.session.token);
});

test('a second refused code is the caller\'s, with the server\'s code and detail', async () => {
  const wx = fakeWx();
  wx.scriptedCodes.push(`used-${process.pid}-2`, `bad-${process.pid}-3`);
  const client = createClient({ baseUrl: mall.base, wx });
  await assert.rejects(client.login(), (err) => {
    assert.equal(err.code, 'wechat_code_invalid');
    assert.equal(err.statusCode, 400);
    assert.ok(err.detail);
    return true;
  });
  assert.equal(wx.loginCalls, 2, 'one fresh code, not a loop');
  assert.equal(client.session, null);
});

test('other errors come back unchanged, with the server\'s code and detail', async () => {
  const wx = fakeWx();
  const client = createClient({ baseUrl: mall.base, wx });
  const res = await client.request({ url: '/mall/goods/999999999/' });
  assert.equal(res.statusCode, 404);
  assert.equal(res.data.code, 'not_found');
  assert.equal(res.data.detail, 'Not found.');
  assert.equal(wx.calls('/mall/goods/999999999/').length, 1, 'not retried');
});

test('logout ends the session on the server and clears storage', async () => {
  const wx = fakeWx();
  const client = createClient({ baseUrl: mall.base, wx });
  await client.login();
  const { token } = client.session;
  await client.logout();
  assert.equal(client.session, null);
  assert.equal(wx.storage.has('wxrest.session'), false);
  assert.equal(wx.calls('/auth/logout/', 200).length, 1);
  const res = await fetch(`${mall.base}/mall/orders/`, { headers: { Authorization: `JWT ${token}` } });
  assert.equal(res.status, 401);
  assert.equal((await res.json()).code, 'token_revoked');
});
