// End-to-end test of the operator console in headless Chromium.
//
// Starts the whole system itself (a nats-server and the four real binaries
// on free loopback ports, authentication on), then drives the console as an
// operator would: sign in with a token, watch a posted ticket appear without
// reloading, acknowledge an alert by clicking, report skede 1 through the
// form and see skede 3's due time move. Keeps screenshots in docs/.
//
//   node console-test/run.mjs            (binaries from target/debug)
//   NISVAKT_BIN_DIR=/path/to/bins node console-test/run.mjs
//
// Needs: nats-server >= 2.12 (NATS_SERVER_BIN, .tools/nats/bin or PATH),
// Chromium at /usr/bin/chromium (CHROMIUM to override), `npm install` here.
// Prints `N passed, N failed` and exits non-zero on any failure.

import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, mkdtempSync, mkdirSync, rmSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const binDir = process.env.NISVAKT_BIN_DIR
  || join(process.env.CARGO_TARGET_DIR || join(root, 'target'), 'debug');
const docs = join(root, 'docs');
const OPERATOR = 'console-operator-token';
const TICKETING = 'console-ticketing-token';
const STEP_TIMEOUT = 45_000;

const procs = [];
const tmp = mkdtempSync(join(tmpdir(), 'nisvakt-console-'));
let passed = 0;
let failed = 0;

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
  });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, fn, timeout = STEP_TIMEOUT) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try { const v = await fn(); if (v) return v; } catch (e) { last = e; }
    await sleep(200);
  }
  throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

function natsBinary() {
  const c = [process.env.NATS_SERVER_BIN, join(root, '.tools/nats/bin/nats-server'),
    ...(process.env.PATH || '').split(':').map((d) => join(d, 'nats-server'))].filter(Boolean);
  const found = c.find((p) => existsSync(p));
  if (!found) throw new Error('no nats-server: set NATS_SERVER_BIN or run `cargo xtask nats`');
  return found;
}

function start(name, bin, args, env) {
  const log = join(tmp, `${name}.log`);
  const fd = openSync(log, 'a');
  const p = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', fd, fd] });
  procs.push({ name, p, log });
  return p;
}

function stopAll() {
  for (const { p } of procs.reverse()) { try { p.kill('SIGKILL'); } catch { /* gone */ } }
}

async function step(name, fn) {
  try {
    await fn();
    passed += 1;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}\n     ${e.message.split('\n').join('\n     ')}`);
    throw e;
  }
}

async function main() {
  for (const b of ['nisvakt-intake', 'nisvakt-classifier', 'nisvakt-deadline-timer', 'nisvakt-notifier']) {
    if (!existsSync(join(binDir, b))) throw new Error(`${join(binDir, b)} missing: run \`cargo build --workspace --bins\` (or set NISVAKT_BIN_DIR)`);
  }
  const natsPort = await freePort();
  mkdirSync(join(tmp, 'js'));
  start('nats-server', natsBinary(), ['-a', '127.0.0.1', '-p', String(natsPort), '-js', '-sd', join(tmp, 'js')], {});
  const natsUrl = `nats://127.0.0.1:${natsPort}`;
  const httpPort = await freePort();
  const http = `http://127.0.0.1:${httpPort}`;
  const common = async () => ({ NATS_URL: natsUrl, NISVAKT_ADMIN_ADDR: `127.0.0.1:${await freePort()}`, NISVAKT_LOG: 'info' });
  start('intake', join(binDir, 'nisvakt-intake'), [], {
    ...(await common()), NISVAKT_HTTP_ADDR: `127.0.0.1:${httpPort}`, NISVAKT_GRPC_ADDR: `127.0.0.1:${await freePort()}`,
    NISVAKT_TOKENS: `ticketing=${TICKETING},operator=${OPERATOR}`,
  });
  start('classifier', join(binDir, 'nisvakt-classifier'), [], { ...(await common()), NISVAKT_RULES: join(root, 'rules') });
  start('deadline-timer', join(binDir, 'nisvakt-deadline-timer'), [], await common());
  start('notifier', join(binDir, 'nisvakt-notifier'), [], { ...(await common()), NISVAKT_ROUTING: join(root, 'deploy/routing.example.toml') });

  const apiGet = async (path) => {
    const r = await fetch(`${http}${path}`, { headers: { Authorization: `Bearer ${OPERATOR}` } });
    return { status: r.status, body: await r.json().catch(() => null) };
  };
  await step('the system starts and intake answers with a token', async () => {
    await until('intake to answer', async () => (await apiGet('/v1/incidents')).status === 200, 60_000);
    const r = await fetch(`${http}/v1/incidents`);
    if (r.status !== 401) throw new Error(`expected 401 without a token, got ${r.status}`);
  });

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1360, height: 900 }, locale: 'sv-SE', timezoneId: 'UTC' });
    page.setDefaultTimeout(STEP_TIMEOUT);
    const pageErrors = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));

    await step('the console asks for a token and signs in', async () => {
      await page.goto(`${http}/`);
      await page.locator('#login').waitFor({ state: 'visible' });
      await page.fill('#token', OPERATOR);
      await page.click('#login button[type=submit]');
      await page.locator('#main').waitFor({ state: 'visible' });
      await page.fill('#operator-name', 'Eva Ek (NIS-bedömare)');
      await page.locator('#live.on').waitFor();
    });

    let incidentId;
    await step('a ticket posted to the API appears without reloading', async () => {
      const now = Date.now();
      const ticket = {
        source: 'intraservice', ticket_id: 'CONSOLE-1', revision: 1,
        subject: 'Eventuell NIS-incident: journalsystemet går inte att nå',
        description: 'Ingen på enheten kommer åt journalen sedan i morse.',
        reported_at: new Date(now).toISOString(), unit: 'Hemsjukvården Centrum', system: 'Journalsystemet',
        disruption_started_at: new Date(now - 7 * 3600_000).toISOString(), care_blocked: true, status: 'open',
      };
      const r = await fetch(`${http}/v1/tickets`, {
        method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${TICKETING}` },
        body: JSON.stringify(ticket),
      });
      if (r.status !== 202) throw new Error(`POST /v1/tickets answered ${r.status}`);
      const card = page.locator('article.incident');
      await card.first().waitFor();
      incidentId = await card.first().getAttribute('data-incident-id');
      await page.locator(`[data-incident-id="${incidentId}"] .badge.bad`).waitFor();
      await page.locator(`[data-incident-id="${incidentId}"] tr[data-duty=nis][data-stage="3"]`).waitFor();
      const cd = await page.locator(`[data-incident-id="${incidentId}"] .countdown`).first().textContent();
      if (!/^(om|försenad) /.test(cd || '')) throw new Error(`countdown reads ${cd}`);
    });

    await step('an alert is acknowledged by clicking', async () => {
      const alert = page.locator(`li.alert[data-incident-id="${incidentId}"]`).first();
      await alert.waitFor();
      const alertId = await alert.getAttribute('data-alert-id');
      await page.screenshot({ path: join(docs, 'console-overview.png'), fullPage: true });
      await alert.locator('button.ack').click();
      await page.locator(`li.alert[data-alert-id="${alertId}"]`).waitFor({ state: 'detached' });
      const all = await apiGet('/v1/alerts?include_acked=true');
      const a = (all.body.alerts || []).find((x) => x.id === alertId);
      if (!a || a.acked_by !== 'Eva Ek (NIS-bedömare)') throw new Error(`alert not acked by Eva: ${JSON.stringify(a)}`);
    });

    await step('reporting skede 1 through the form moves skede 3', async () => {
      const card = page.locator(`[data-incident-id="${incidentId}"]`);
      const row3 = card.locator('tr[data-duty=nis][data-stage="3"] time.due');
      const before = await row3.getAttribute('datetime');
      await card.locator('details.act', { has: page.locator('form[data-form=report]') }).locator('summary').click();
      const form = card.locator('form[data-form=report]');
      await form.locator('select[name=stage]').selectOption('nis|1');
      await form.locator('select[name=channel]').selectOption('tool');
      await page.screenshot({ path: join(docs, 'console-report.png'), fullPage: true });
      await form.locator('button[type=submit]').click();
      await card.locator('tr[data-duty=nis][data-stage="1"][data-status=met]').waitFor();
      await until('skede 3 to move', async () => (await row3.getAttribute('datetime')) !== before);
      const after = await row3.getAttribute('datetime');
      const weeks = (new Date(after) - Date.now()) / (7 * 86400_000);
      if (weeks < 3.9 || weeks > 4.1) throw new Error(`skede 3 due ${after}: not four weeks from the report`);
    });

    await step('the English toggle translates the page', async () => {
      await page.click('#lang');
      await page.locator('html[lang=en]').waitFor({ state: 'attached' });
      const h = await page.locator('#incidents-h').textContent();
      if (h !== 'Open incidents') throw new Error(`heading reads ${h}`);
      await page.screenshot({ path: join(docs, 'console-en.png'), fullPage: true });
      if (pageErrors.length) throw new Error(`script errors: ${pageErrors.join('; ')}`);
    });
  } finally {
    await browser.close();
  }
}

try {
  await main();
} catch (e) {
  if (!failed) { failed += 1; console.log(`FAIL setup\n     ${e.message}`); }
  for (const { name, log } of procs) {
    try { console.log(`--- ${name} (last lines) ---\n${readFileSync(log, 'utf8').split('\n').slice(-15).join('\n')}`); } catch { /* none */ }
  }
} finally {
  stopAll();
  rmSync(tmp, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
