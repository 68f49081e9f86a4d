// Opens a history report in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core) and checks what a reader relies on:
// - no page error, no console error, no request at all (the report is one self-contained file);
// - every chart holds one data point per record it charts, counted from the records file:
//   durations: every record; estimates: successful records with an estimate; lock waits:
//   records with a lock wait; resources: each listed resource's completed forward runs;
// - the charts carry labelled axes and every point a <title>.
// Writes a full-page PNG and prints one JSON line (counts, load times).
//
//   node tests/report/render.mjs --html report.html --records history.json --png report.png [--runs N]
//
// Exit 0 when every check passes, 1 otherwise (the JSON says which), 2 on bad arguments.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

function args(argv) {
  const out = { runs: 1 };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (v === undefined) throw new Error(`${k} needs a value`);
    if (k === '--html') out.html = resolve(v);
    else if (k === '--records') out.records = resolve(v);
    else if (k === '--png') out.png = resolve(v);
    else if (k === '--runs') out.runs = Math.max(1, Number.parseInt(v, 10));
    else throw new Error(`unknown argument ${k}`);
  }
  if (!out.html || !out.records) throw new Error('--html and --records are required');
  return out;
}

// What each chart should hold, per stack, from the records alone.
function expected(records) {
  const stacks = new Map();
  for (const r of records) {
    if (!stacks.has(r.stack)) stacks.set(r.stack, []);
    stacks.get(r.stack).push(r);
  }
  const out = {};
  for (const [stack, rs] of stacks) {
    const runs = {};
    for (const r of rs) {
      const cut = r.rollback_started_at ? Date.parse(r.rollback_started_at) : Infinity;
      for (const res of r.resources ?? []) {
        if (res.status.endsWith('_COMPLETE') && Date.parse(res.started_at) < cut) {
          runs[res.logical_id] = (runs[res.logical_id] ?? 0) + 1;
        }
      }
    }
    out[stack] = {
      duration: rs.length,
      estimate: rs.filter((r) => r.outcome === 'succeeded' && r.estimate).length,
      wait: rs.filter((r) => typeof r.lock_wait_seconds === 'number').length,
      resourceRuns: runs,
    };
  }
  return out;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  let opts;
  try {
    opts = args(process.argv.slice(2));
  } catch (e) {
    console.error(String(e.message ?? e));
    process.exit(2);
  }
  const records = JSON.parse(readFileSync(opts.records, 'utf8'));
  const want = expected(records);
  const profile = mkdtempSync(join(tmpdir(), 'report-chromium-'));
  const problems = [];
  const errors = [];
  const requests = [];
  let context;
  try {
    // A fresh profile (playwright passes it as --user-data-dir), removed at the end.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      headless: true,
      viewport: { width: 1000, height: 800 },
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ],
    });
    const page = context.pages()[0] ?? await context.newPage();
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') errors.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()}`));
    const url = pathToFileURL(opts.html).href;
    // Any request but the page itself is a dependency the file should not have.
    page.on('request', (r) => { if (r.url() !== url) requests.push(r.url()); });

    const loads = [];
    for (let i = 0; i < opts.runs; i++) {
      const t0 = performance.now();
      await page.goto(url, { waitUntil: 'load' });
      // Layout and paint done: the next animation frame after load.
      await page.evaluate(() => new Promise((ok) => requestAnimationFrame(() => ok())));
      loads.push(performance.now() - t0);
    }

    const seen = await page.evaluate(() => {
      const out = {};
      for (const s of document.querySelectorAll('section[data-stack]')) {
        const count = (chart) => s.querySelectorAll(`svg[data-chart="${chart}"] [data-point]`).length;
        const resources = {};
        for (const g of s.querySelectorAll('svg[data-chart="resources"] g[data-resource]')) {
          resources[g.getAttribute('data-resource')] = g.querySelectorAll('[data-point="resource"]').length;
        }
        out[s.getAttribute('data-stack')] = {
          duration: count('duration'),
          estimate: count('estimate'),
          wait: count('wait'),
          resources,
        };
      }
      const charts = [...document.querySelectorAll('svg.chart')];
      return {
        stacks: out,
        charts: charts.length,
        untitledPoints: document.querySelectorAll('[data-point]:not(:has(> title))').length,
        chartsWithoutTicks: charts.filter((c) => c.querySelectorAll('.axis text').length < 3).length,
        scripts: document.querySelectorAll('script').length,
      };
    });

    for (const [stack, w] of Object.entries(want)) {
      const got = seen.stacks[stack];
      if (!got) { problems.push(`no section for stack ${stack}`); continue; }
      for (const k of ['duration', 'estimate', 'wait']) {
        if (got[k] !== w[k]) problems.push(`${stack}: ${k} chart has ${got[k]} points, records say ${w[k]}`);
      }
      const listed = Object.keys(got.resources);
      if (listed.length === 0 && Object.keys(w.resourceRuns).length > 0) problems.push(`${stack}: no resource rows`);
      for (const id of listed) {
        if (got.resources[id] !== w.resourceRuns[id]) {
          problems.push(`${stack}: resource ${id} has ${got.resources[id]} points, records say ${w.resourceRuns[id]}`);
        }
      }
      // Which resources are the slowest is unit-tested in Rust; here, that the rows are the
      // stack's own resources.
      for (const id of listed) if (!(id in w.resourceRuns)) problems.push(`${stack}: unknown resource ${id}`);
    }
    if (Object.keys(seen.stacks).length !== Object.keys(want).length) {
      problems.push(`page has ${Object.keys(seen.stacks).length} stack sections, records have ${Object.keys(want).length}`);
    }
    if (seen.untitledPoints > 0) problems.push(`${seen.untitledPoints} data points without a <title>`);
    if (seen.chartsWithoutTicks > 0) problems.push(`${seen.chartsWithoutTicks} charts without labelled ticks`);
    if (seen.scripts > 0) problems.push(`${seen.scripts} <script> elements`);
    problems.push(...errors, ...requests.map((u) => `unexpected request: ${u}`));

    if (opts.png) await page.screenshot({ path: opts.png, fullPage: true });
    console.log(JSON.stringify({
      ok: problems.length === 0,
      problems,
      charts: seen.charts,
      stacks: seen.stacks,
      load_ms: { runs: loads.length, median: median(loads), min: Math.min(...loads), max: Math.max(...loads) },
    }));
  } finally {
    if (context) await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
  process.exit(problems.length === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(e?.stack ?? String(e));
  process.exit(1);
});
