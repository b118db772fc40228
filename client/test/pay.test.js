'use strict';
// Paying: the server decides, not wx.requestPayment's success callback.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { createClient } = require('..');
const { startMall } = require('../support/mall');
const { fakeWx } = require('../support/wx');

// WeChat Pay tells the mall 1.5 s after the buyer paid.
let mall;
before(async () => { mall = await startMall({ MALL_FAKE_PAY_NOTIFY_DELAY: '1500' }); });
after(async () => { if (mall) await mall.stop(); });

/** A client with a pending order of one unit: `{ client, wx, id }`. */
async function withOrder(payment, options = {}) {
  const wx = fakeWx({ payBase: mall.payBase, payment });
  const client = createClient(Object.assign({ baseUrl: mall.base, wx }, options));
  const goods = await client.request({ url: '/mall/goods/' });
  const item = goods.data.results.find((g) => g.stock > 0);
  const placed = await client.request({
    url: '/mall/orders/',
    method: 'POST',
    data: { items: [{ goods: item.id, quantity: 1 }] },
  });
  assert.equal(placed.statusCode, 201, JSON.stringify(placed.data));
  assert.equal(placed.data.status, 'pending');
  return { client, wx, id: placed.data.id };
}

test('pay with the notification delayed resolves paid once the server knows', async () => {
  const { client, wx, id } = await withOrder('pay');
  const result = await client.pay(id);
  assert.equal(result.status, 'paid');
  assert.equal(result.order.status, 'paid');
  assert.equal(result.order.id, id);
  assert.equal(wx.paymentCalls, 1);
  const reads = wx.calls(`/mall/orders/${id}/`, 200);
  assert.ok(reads.length >= 2, 'the first read after paying was still pending');
});

test('pay cancelled by the user resolves cancelled, never paid', async () => {
  const { client, wx, id } = await withOrder('cancel');
  const result = await client.pay(id);
  assert.equal(result.status, 'cancelled');
  assert.equal(result.order.status, 'pending');
  assert.equal(wx.paymentCalls, 1);
});

test('pay with success but no payment rejects payment_unconfirmed', async () => {
  const { client, wx, id } = await withOrder('success-unpaid', { pollIntervals: [100, 200, 300] });
  await assert.rejects(client.pay(id), (err) => {
    assert.equal(err.code, 'payment_unconfirmed');
    assert.equal(err.order.status, 'pending');
    return true;
  });
  assert.equal(wx.calls(`/mall/orders/${id}/`, 200).length, 4, 'one read, then one per pause');
});

test('a refused pay request rejects with the server\'s code', async () => {
  const { client, id } = await withOrder('pay');
  await client.request({ url: `/mall/orders/${id}/cancel/`, method: 'POST', data: {} });
  await assert.rejects(client.pay(id), (err) => {
    assert.equal(err.code, 'invalid_state');
    assert.equal(err.statusCode, 409);
    return true;
  });
});
