'use strict';
// Starts the real example mall (the built binary) in development mode on a temporary SQLite
// file at a free 127.0.0.1 port. The binary: WXREST_MALL_BIN, else
// $CARGO_TARGET_DIR/debug/examples/mall, else ../target/debug/examples/mall (build it with
// `cargo build --example mall`; `cargo test` builds it too).
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

function mallBinary() {
  const candidates = [
    process.env.WXREST_MALL_BIN,
    process.env.CARGO_TARGET_DIR && path.join(process.env.CARGO_TARGET_DIR, 'debug/examples/mall'),
    path.join(__dirname, '../../target/debug/examples/mall'),
  ].filter(Boolean);
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) {
    throw new Error(
      `the mall binary is missing (looked at ${candidates.join(', ')}): run \`cargo build --example mall\` or set WXREST_MALL_BIN`,
    );
  }
  return found;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Everything that would take the mall out of development mode or onto shared services.
const SCRUBBED = ['JWT_SECRET', 'WX_APPID', 'WX_SECRET', 'WXPAY_MCHID', 'REDIS_URL', 'DATABASE_URL', 'WXPAY_NOTIFY_URL'];

/** Starts a mall with `settings` added to its environment: `{ base, payBase, stop() }`. */
async function startMall(settings = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wxrest-client-'));
  const [port, payPort] = [await freePort(), await freePort()];
  const env = Object.assign({}, process.env);
  for (const name of SCRUBBED) delete env[name];
  Object.assign(env, {
    MALL_DEV: '1',
    DATABASE_URL: `sqlite://${path.join(dir, 'mall.db')}`,
    WXREST_BIND: `127.0.0.1:${port}`,
    MALL_FAKE_PAY_BIND: `127.0.0.1:${payPort}`,
    MALL_SEED_DEMO: '1',
    RUST_LOG: 'warn,mall=warn',
    LOG_FORMAT: 'text',
  }, settings);
  const child = spawn(mallBinary(), ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (b) => { output = (output + b).slice(-8000); });
  child.stderr.on('data', (b) => { output = (output + b).slice(-8000); });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const base = `http://127.0.0.1:${port}`;
  let up = false;
  // Up to 60 s for the first start on a busy machine; an early exit fails at once.
  for (let i = 0; i < 600 && child.exitCode === null && !up; i++) {
    try {
      up = (await fetch(`${base}/healthz`)).ok;
    } catch (_) {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  if (!up) {
    child.kill('SIGKILL');
    throw new Error(`the mall did not start (exit ${child.exitCode}):\n${output}`);
  }
  return {
    base,
    payBase: `http://127.0.0.1:${payPort}`,
    output: () => output,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

module.exports = { startMall };
