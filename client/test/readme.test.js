'use strict';
// The README's "Mini-program" app code, run as a mini-program would run it: App, Page and
// getApp as the framework provides them, `wx` the stand-in, against the real mall.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');
const { startMall } = require('../support/mall');
const { fakeWx } = require('../support/wx');

let mall;
before(async () => { mall = await startMall(); });
after(async () => { if (mall) await mall.stop(); });

function readmeSnippet() {
  const readme = fs.readFileSync(path.join(__dirname, '../../README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Mini-program'));
  const match = /```js\n([\s\S]*?)```/.exec(section);
  assert.ok(match, 'the Mini-program section has a js block');
  return match[1];
}

test("the README's app code logs in, lists goods and pays", async () => {
  const code = readmeSnippet();
  assert.ok(code.includes("'https://api.example.com'"));
  const wx = fakeWx({ payBase: mall.payBase });
  const toasts = [];
  wx.showToast = (options) => toasts.push(options.title);
  let app;
  let page;
  const sandbox = {
    wx,
    require: (name) => {
      assert.equal(name, 'wxrest-client');
      return require('..');
    },
    App: (definition) => { app = definition; },
    Page: (definition) => {
      page = Object.assign({}, definition, {
        setData(update) { this.data = Object.assign({}, this.data, update); },
      });
    },
    getApp: () => app,
  };
  vm.runInNewContext(code.replace("'https://api.example.com'", JSON.stringify(mall.base)), sandbox);
  await app.onLaunch();
  assert.equal(wx.loginCalls, 1);
  await page.onLoad();
  assert.ok(page.data.goods.length > 0, 'goods matching "tea" are listed');
  assert.ok(page.data.goods.every((g) => /tea/i.test(JSON.stringify(g))));
  const inStock = page.data.goods.find((g) => g.stock > 0);
  await page.buy({ currentTarget: { dataset: { id: inStock.id } } });
  assert.deepEqual(toasts, ['Paid']);
  assert.equal(wx.paymentCalls, 1);
});
