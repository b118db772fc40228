'use strict';
// 429 with Retry-After: the client waits as told (bounded) and retries.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { createClient } = require('..');
const { startMall } = require('../support/mall');
const { fakeWx } = require('../support/wx');

let mall;
before(async () => { mall = await startMall({ MALL_THROTTLE_USER: '2/second' }); });
after(async () => { if (mall) await mall.stop(); });

test('429 with Retry-After is waited out and retried', async () => {
  const wx = fakeWx();
  const client = createClient({ baseUrl: mall.base, wx });
  await client.login();
  const answers = await Promise.all([1, 2, 3, 4].map(() => client.request({ url: '/mall/goods/' })));
  assert.deepEqual(answers.map((r) => r.statusCode), [200, 200, 200, 200]);
  const throttled = wx.calls('/mall/goods/', 429);
  assert.ok(throttled.length >= 1, 'the server throttled some');
  assert.ok(throttled.every((e) => e.code === 'throttled'));
});

test('a Retry-After longer than the bound is returned to the caller unchanged', async () => {
  const wx = fakeWx();
  const client = createClient({ baseUrl: mall.base, wx, maxRetryAfter: 0 });
  await client.login();
  const answers = await Promise.all([1, 2, 3, 4].map(() => client.request({ url: '/mall/goods/' })));
  const refused = answers.filter((r) => r.statusCode === 429);
  assert.ok(refused.length >= 1);
  for (const res of refused) {
    assert.equal(res.data.code, 'throttled');
    assert.match(res.data.detail, /^Request was throttled/);
    assert.ok(Number(res.header['retry-after']) >= 1);
  }
  assert.equal(wx.calls('/mall/goods/').length, 4, 'nothing retried');
});
